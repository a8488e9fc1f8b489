//! Pods run for real: kube-rs creates a pod on the fake, whose containers run on the Docker
//! engine; exec, attach and log reach the real processes; deletion removes the containers.
//! Without an engine the tests print `SKIPPED` (and fail with `CI=true`).

mod support;

use std::time::Duration;

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams, WatchEvent, WatchParams};
use runnel_kube_fake::{FakeCluster, FakeOptions, Kind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const BUSYBOX: &str = "runnel-test/busybox:latest";

/// Waits through a kube-rs watch until the pod satisfies `done`.
async fn watch_until(pods: &Api<Pod>, name: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(120);
    let mut stream = Box::pin(pods.watch(&params, "0").await.expect("a watch"));
    while let Some(event) = stream.try_next().await.expect("watch events") {
        match event {
            WatchEvent::Added(pod) | WatchEvent::Modified(pod) if done(&pod) => return pod,
            WatchEvent::Deleted(_) => panic!("the pod {name} was deleted"),
            _ => {}
        }
    }
    panic!("the watch of {name} ended before the condition held");
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn read_all(mut reader: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .await
        .expect("readable output");
    text
}

#[tokio::test]
async fn docker_pod_runs_exec_attach_log_and_delete() {
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = support::client(&cluster, dir.path(), "ci").await;
    let pods: Api<Pod> = Api::namespaced(client, "ci");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "runner-job-1", "labels": {"job.runner.gitlab.com/id": "1"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "build", "image": BUSYBOX, "command": ["sh"], "stdin": true, "stdinOnce": true,
                 "env": [{"name": "GREETING", "value": "hello"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "workingDir": "/builds", "volumeMounts": [{"name": "repo", "mountPath": "/builds"}]},
                {"name": "helper", "image": BUSYBOX, "command": ["sh", "-c", "echo helper-started; echo to-stderr >&2; exec sleep 3600"],
                 "volumeMounts": [{"name": "repo", "mountPath": "/builds"}]}
            ],
            "volumes": [{"name": "repo", "emptyDir": {}}],
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["postgres", "db.local"]}]
        }
    }))
    .expect("a valid pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("created");
    let running = watch_until(&pods, "runner-job-1", |p| phase(p) == "Running").await;
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(runnel_kube_fake::NODE_NAME)
    );
    let statuses = running
        .status
        .and_then(|s| s.container_statuses)
        .expect("container statuses");
    assert_eq!(
        statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["build", "helper"]
    );
    assert!(statuses.iter().all(|s| {
        s.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("docker://"))
    }));

    // exec: stdout, stderr and the exit code in the v4/v5 status, from a real process that
    // sees the shared volume and the host aliases.
    let mut failing = pods
        .exec(
            "runner-job-1",
            [
                "sh",
                "-c",
                "echo shared > /builds/file; grep postgres /etc/hosts; echo oops >&2; exit 3",
            ],
            &AttachParams::default().container("helper").stderr(true),
        )
        .await
        .expect("exec starts");
    let (stdout, stderr) = (
        failing.stdout().expect("stdout"),
        failing.stderr().expect("stderr"),
    );
    let status = failing.take_status().expect("a status future");
    let (out, err) = tokio::join!(read_all(stdout), read_all(stderr));
    assert!(
        out.contains("127.0.0.1") && out.contains("postgres"),
        "{out:?}"
    );
    assert_eq!(err, "oops\n");
    let status = status.await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.and_then(|d| d.causes).expect("causes");
    assert_eq!(
        (causes[0].reason.as_deref(), causes[0].message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );
    failing.join().await.expect("the exec stream ends cleanly");

    // attach: the script goes to the build container's stdin, its output comes back.
    let mut attached = pods
        .attach(
            "runner-job-1",
            &AttachParams::default()
                .container("build")
                .stdin(true)
                .stdout(true)
                .stderr(false),
        )
        .await
        .expect("attach starts");
    let mut stdin = attached.stdin().expect("stdin");
    let stdout = attached.stdout().expect("stdout");
    let status = attached.take_status().expect("a status future");
    stdin
        .write_all(b"pwd; cat file; echo $GREETING $POD_NAME; exit 0\n")
        .await
        .expect("the script is sent");
    drop(stdin);
    let out = read_all(stdout).await;
    assert_eq!(out, "/builds\nshared\nhello runner-job-1\n");
    assert_eq!(
        status.await.and_then(|s| s.status).as_deref(),
        Some("Success")
    );
    let after = watch_until(&pods, "runner-job-1", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|list| {
                list.iter().any(|c| {
                    c.name == "build"
                        && c.state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .is_some()
                })
            })
    })
    .await;
    assert_eq!(phase(&after), "Running", "the helper still runs");
    let build = after
        .status
        .and_then(|s| s.container_statuses)
        .expect("statuses")
        .into_iter()
        .find(|c| c.name == "build")
        .expect("build");
    let terminated = build.state.and_then(|s| s.terminated).expect("terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );

    // log: both streams of the helper.
    let log = pods
        .logs(
            "runner-job-1",
            &LogParams {
                container: Some("helper".to_owned()),
                ..LogParams::default()
            },
        )
        .await
        .expect("a log");
    assert!(
        log.contains("helper-started\n") && log.contains("to-stderr\n"),
        "{log:?}"
    );

    // delete: graceful, then gone with its containers and volumes.
    let deleted = pods
        .delete(
            "runner-job-1",
            &DeleteParams {
                grace_period_seconds: Some(1),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("deleted");
    let terminating = deleted.left().expect("the pod is answered");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let gone = cluster
        .wait_for_pod("ci", "runner-job-1", Duration::from_secs(60), |_| false)
        .await;
    assert!(
        gone.is_none(),
        "the pod object went after its containers stopped"
    );
    assert_eq!(cluster.docker_leftovers().await, (Vec::new(), Vec::new()));
    let post = cluster
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/namespaces/ci/pods")
        .expect("recorded");
    assert_eq!(
        post.body
            .as_ref()
            .map(|b| &b["spec"]["hostAliases"][0]["hostnames"][0]),
        Some(&json!("postgres"))
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn docker_missing_image_waits_with_image_pull_errors() {
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "no-image"},
        "spec": {"containers": [{"name": "build", "image": "runnel-test/does-not-exist:1"}]}});
    cluster.create(Kind::Pod, "ci", pod).expect("created");
    let waiting = |reason: &'static str| {
        move |pod: &Value| {
            pod.pointer("/status/containerStatuses/0/state/waiting/reason") == Some(&json!(reason))
        }
    };
    let seen = cluster
        .wait_for_pod(
            "ci",
            "no-image",
            Duration::from_secs(60),
            waiting("ErrImagePull"),
        )
        .await
        .expect("the pod");
    assert_eq!(seen["status"]["phase"], "Pending");
    let seen = cluster
        .wait_for_pod(
            "ci",
            "no-image",
            Duration::from_secs(60),
            waiting("ImagePullBackOff"),
        )
        .await
        .expect("the pod");
    assert_eq!(
        seen["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "Back-off pulling image \"runnel-test/does-not-exist:1\""
    );
    let (containers, _) = cluster.docker_leftovers().await;
    assert_eq!(containers.len(), 1, "only the sandbox runs: {containers:?}");
    let instance = cluster.instance_id().to_owned();
    cluster.shutdown().await;
    // Shutdown removes everything of the instance.
    let docker = bollard::Docker::connect_with_defaults().expect("the engine");
    let filter = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={instance}", runnel_kube_fake::LABEL_INSTANCE)],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    assert!(
        docker
            .list_containers(Some(options))
            .await
            .expect("a list")
            .is_empty()
    );
}

#[tokio::test]
async fn docker_init_container_secret_volume_and_env_then_succeeded() {
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "hunter2", "user": "ci"}});
    cluster
        .create(Kind::Secret, "ci", secret)
        .expect("the secret");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"MODE": "test"}});
    cluster
        .create(Kind::ConfigMap, "ci", config)
        .expect("the config map");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init-and-volumes"},
    "spec": {
        "restartPolicy": "Never",
        "initContainers": [{"name": "prepare", "image": BUSYBOX, "command": ["sh", "-c", "echo prepared > /work/ready"],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
        "containers": [{"name": "main", "image": BUSYBOX,
            "command": ["sh", "-c", "cat /work/ready; cat /secrets/pass; echo \" $MODE $(USER_NAME)\"; ls /secrets"],
            "envFrom": [{"configMapRef": {"name": "settings"}}],
            "env": [{"name": "USER_NAME", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "secret", "mountPath": "/secrets", "readOnly": true}]}],
        "volumes": [{"name": "work", "emptyDir": {}}, {"name": "secret", "secret": {"secretName": "creds", "items": [{"key": "password", "path": "pass"}]}}]
    }});
    cluster.create(Kind::Pod, "ci", pod).expect("created");
    let done = cluster
        .wait_for_pod("ci", "init-and-volumes", Duration::from_secs(60), |p| {
            p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed"
        })
        .await
        .expect("the pod");
    assert_eq!(done["status"]["phase"], "Succeeded", "{:#}", done["status"]);
    assert_eq!(
        done["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pods: Api<Pod> = Api::namespaced(support::client(&cluster, dir.path(), "ci").await, "ci");
    let log = pods
        .logs("init-and-volumes", &LogParams::default())
        .await
        .expect("a log");
    // `$(USER_NAME)` in a command is expanded by the kubelet; `$MODE` by the shell.
    assert_eq!(log, "prepared\nhunter2 test ci\npass\n");
    cluster.shutdown().await;
}

#[tokio::test]
async fn docker_evicted_pod_fails_and_events_tell_the_story() {
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = support::client(&cluster, dir.path(), "ci").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ci");
    for name in ["evicted", "api-evicted"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "sleeper", "image": BUSYBOX, "command": ["sleep", "600"]}]}});
        cluster.create(Kind::Pod, "ci", pod).expect("created");
        watch_until(&pods, name, |p| phase(p) == "Running").await;
    }
    cluster.evict("ci", "evicted").expect("evicted");
    let failed = watch_until(&pods, "evicted", |p| phase(p) == "Failed").await;
    assert_eq!(
        failed.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("Evicted")
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "ci");
    let listed = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=evicted"))
        .await
        .expect("events");
    let reasons: Vec<&str> = listed
        .items
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    // The eviction manager records `Evicted` and marks the pod before it kills the containers
    // (kubelet `eviction_manager.go` `evictPod`, then `killPodFunc`).
    assert_eq!(
        reasons,
        [
            "Scheduled",
            "Pulled",
            "Created",
            "Started",
            "Evicted",
            "Killing"
        ]
    );
    let disrupted = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionTarget"))
        .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(
        disrupted,
        Some(("True".to_owned(), Some("TerminationByKubelet".to_owned())))
    );

    // The Eviction subresource deletes the pod gracefully.
    // kube-rs's `evict` sends `delete_options` (snake case), a field `Eviction` does not
    // have: strict decoding refuses it where a real server would drop it with a warning.
    let params = kube::api::EvictParams {
        delete_options: Some(DeleteParams::default()),
        ..kube::api::EvictParams::default()
    };
    let error = pods.evict("api-evicted", &params).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown field \"delete_options\""),
        "{error}"
    );
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "api-evicted"}, "deleteOptions": {"gracePeriodSeconds": 1}});
    let request = http::Request::post("/api/v1/namespaces/ci/pods/api-evicted/eviction")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("JSON"))
        .expect("a request");
    let status: kube::core::Status = client
        .request(request)
        .await
        .expect("the eviction is accepted");
    assert_eq!(status.code, 201);
    let gone = cluster
        .wait_for_pod("ci", "api-evicted", Duration::from_secs(60), |_| false)
        .await;
    assert!(gone.is_none());
    pods.delete("evicted", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(
        cluster
            .wait_for_pod("ci", "evicted", Duration::from_secs(60), |_| false)
            .await
            .is_none()
    );
    assert_eq!(cluster.docker_leftovers().await, (Vec::new(), Vec::new()));
    cluster.shutdown().await;
}

#[tokio::test]
async fn docker_exec_stdin_is_closed_by_the_v5_close_signal() {
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pods: Api<Pod> = Api::namespaced(support::client(&cluster, dir.path(), "ci").await, "ci");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "copy"},
    "spec": {"containers": [
        {"name": "build", "image": BUSYBOX, "command": ["sleep", "600"]},
        {"name": "helper", "image": BUSYBOX, "command": ["sleep", "600"]},
        {"name": "svc-0", "image": BUSYBOX, "command": ["sleep", "600"]}
    ]}});
    cluster.create(Kind::Pod, "ci", pod).expect("created");
    watch_until(&pods, "copy", |p| phase(p) == "Running").await;
    let params = AttachParams::default()
        .container("build")
        .stdin(true)
        .stderr(false);
    let mut process = pods
        .exec(
            "copy",
            ["sh", "-c", "cat > /tmp/copied; wc -c < /tmp/copied"],
            &params,
        )
        .await
        .expect("exec starts");
    let mut stdin = process.stdin().expect("stdin");
    let stdout = process.stdout().expect("stdout");
    let payload = vec![b'x'; 1024 * 1024];
    let writer = async move {
        stdin.write_all(&payload).await.expect("written");
        // kube-rs 5 signals the end of stdin on `shutdown` (dropping the half does not): it
        // sends the v5 close signal, and `cat` sees the end of its input.
        stdin.shutdown().await.expect("stdin closed");
    };
    let (out, ()) = tokio::join!(read_all(stdout), writer);
    assert_eq!(out.trim(), "1048576");
    process.join().await.expect("the stream ends");
    cluster.shutdown().await;
}

/// Reads the exec's frames until the error channel's status: (stdout text, stderr text, status).
async fn read_frames<S>(socket: &mut S) -> (String, String, Value)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures_util::StreamExt;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    while let Some(frame) = socket.next().await {
        let Message::Binary(data) = frame.expect("a frame") else {
            continue;
        };
        let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default()).into_owned();
        match data.first() {
            Some(1) => stdout.push_str(&text),
            Some(2) => stderr.push_str(&text),
            Some(3) => {
                return (
                    stdout,
                    stderr,
                    serde_json::from_str(&text).expect("a Status"),
                );
            }
            _ => {}
        }
    }
    panic!("the stream ended without a status: {stdout}");
}

#[tokio::test]
async fn docker_exec_tty_drops_stderr_and_resizes_like_the_kubelet() {
    use futures_util::SinkExt;
    if !support::docker_available().await {
        return;
    }
    let cluster = FakeCluster::start(FakeOptions::default().namespace("ci"))
        .await
        .expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = support::client(&cluster, dir.path(), "ci").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ci");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tty"},
    "spec": {"containers": [{"name": "build", "image": BUSYBOX, "command": ["sleep", "600"]}]}});
    cluster.create(Kind::Pod, "ci", pod).expect("created");
    watch_until(&pods, "tty", |p| phase(p) == "Running").await;
    // What gitlab-runner's terminal asks for: stdin, stdout, stderr and a TTY (kube-rs refuses
    // stderr with a TTY, so this is the raw request).
    let uri = "/api/v1/namespaces/ci/pods/tty/exec?container=build&command=sh\
               &stdin=true&stdout=true&stderr=true&tty=true";
    let request = http::Request::get(uri).body(Vec::new()).expect("a request");
    let mut socket = client
        .connect(request)
        .await
        .expect("the exec opens")
        .into_stream();
    let frame = |channel: u8, data: &[u8]| {
        let mut bytes = vec![channel];
        bytes.extend_from_slice(data);
        Message::Binary(bytes.into())
    };
    // Go's JSON decoder matches `Width`/`Height` case-insensitively; after a message that is
    // not a size, the kubelet reads no more resizes.
    for resize in [
        &b"{\"width\":123,\"height\":45}"[..],
        b"nonsense",
        b"{\"Width\":1,\"Height\":1}",
    ] {
        socket.send(frame(4, resize)).await.expect("resize sent");
    }
    let typed = b"echo to-std''err >&2; stty size; tty; exit 3\n";
    socket.send(frame(0, typed)).await.expect("typed");
    let (stdout, stderr, status) = read_frames(&mut socket).await;
    // One stream on a TTY: stderr comes on stdout, the stderr channel stays silent.
    assert!(stdout.contains("to-stderr"), "{stdout}");
    assert_eq!(stderr, "");
    assert!(stdout.contains("45 123"), "{stdout}");
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");
    cluster.shutdown().await;
}
