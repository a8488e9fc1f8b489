"""The stand-in hypervisors' NAT: forwards 127.0.0.1:<host port> to the test sshd, as VirtualBox
forwards a host port to the guest's SSH port. Exits when its VM's state directory is gone."""
import os
import socket
import sys
import threading
import time

host_port, target_port, vm_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener):
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", host_port))
listener.listen(64)
threading.Thread(target=serve, args=(listener,), daemon=True).start()
while os.path.isdir(vm_dir):
    time.sleep(0.5)
os._exit(0)
