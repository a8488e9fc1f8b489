//! The web terminal (`[session_server]`, GitLab's "Debug a job") of a job run by `runnel run`
//! with `executor = "kubernetes"` on the fake Kubernetes API server: the job request
//! advertises the session, a client with the session token gets a shell in the build container
//! of the job's pod (its project directory, variables and hostname), a wrong token is refused,
//! a terminal that disconnects takes its processes with it, a finished job waits for a
//! connected terminal until `session_timeout`, and afterwards nothing of the job is left.
//!
//! Needs the Docker engine and the images of `scripts/test-images.sh` (SKIPPED without them,
//! a failure with `CI=true`). The test's name contains `docker`, so it runs alone.

use runnel_exec::docker::{TEST_BUSYBOX_IMAGE, docker_available};
use runnel_runner::test_support::{
    JobSpec, assert_kept_until_session_timeout, connect_terminal, hang_up, read_to_close,
    read_until, refused_with, session_of, session_token, type_into,
};

mod support;
use support::kube_daemon::Setup;

/// A job that waits for a first terminal's file, for that terminal's processes to be gone,
/// and for a second terminal's file.
fn waiting_job() -> JobSpec {
    JobSpec::script(&[
        "echo job-started",
        "while [ ! -e terminal-was-here ]; do sleep 0.1; done",
        "while grep -qs 'terminal-marke[r]' /proc/[0-9]*/cmdline; do sleep 0.1; done",
        "echo first-terminal-gone",
        "while [ ! -e second-terminal-was-here ]; do sleep 0.1; done",
        "echo job-done",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_docker_daemon_web_terminal_is_a_shell_in_the_build_container_of_the_job_pod() {
    if !docker_available(&[TEST_BUSYBOX_IMAGE]) {
        return;
    }
    let setup = Setup::with_global(
        "[session_server]\n  listen_address = \"127.0.0.1:0\"\n  session_timeout = 2\n",
        "",
    )
    .await;
    let id = setup.fake.add_job(waiting_job());
    let child = setup.start("run");
    let session = session_of(&setup.fake, id, "job-started").await;
    let pod = setup.wait_for_pod().await;

    assert_eq!(
        refused_with(connect_terminal(&session, "wrong-token").await),
        401
    );
    let mut first = connect_terminal(&session, session_token(&session))
        .await
        .expect("the terminal opens with the session token");
    // In the pod's build container: the project directory of the job, its variables, the
    // pod's hostname. The last command keeps running until the terminal goes.
    type_into(
        &mut first,
        b"echo \"in $(basename $PWD) as $CI_JOB_ID on $(hostname) at $CI_PROJECT_DIR\"; touch terminal-was-here; sh -c 'sleep 3600; :' terminal-marker\n",
    )
    .await;
    read_until(
        &mut first,
        &format!("in app as {id} on {pod} at /builds/acme/app"),
        false,
    )
    .await;
    hang_up(&mut first).await;
    // The job went on only once the disconnected terminal's processes were gone.
    setup.fake.wait_for_trace(id, "first-terminal-gone").await;

    // A second terminal stays connected: the finished job waits for it until
    // session_timeout, and the session ends with the job.
    let mut second = connect_terminal(&session, session_token(&session))
        .await
        .expect("a second terminal opens");
    type_into(
        &mut second,
        b"echo second-$((6 * 7)); touch second-terminal-was-here\n",
    )
    .await;
    read_until(&mut second, "second-42", false).await;
    read_to_close(&mut second).await;
    assert_kept_until_session_timeout(&setup.fake, id, "2s").await;
    assert_eq!(
        refused_with(connect_terminal(&session, session_token(&session)).await),
        404
    );
    setup.assert_nothing_left().await;
    setup.shutdown(child).await;
}
