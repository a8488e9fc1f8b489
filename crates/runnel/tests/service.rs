//! `runnel install`, `status`, `start`, `uninstall` (gitlab-runner's service commands) against a
//! unit directory of the test's own (`RUNNEL_SYSTEMD_UNIT_DIR`), and the completions and man
//! pages generated from the command line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

mod support;
use support::runnel_command;

fn runnel(units: &Path) -> tokio::process::Command {
    let mut command = runnel_command();
    command.env("RUNNEL_SYSTEMD_UNIT_DIR", units);
    command
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
    })
}

#[tokio::test]
async fn install_writes_gitlab_runners_unit_and_status_answers_from_it_without_systemd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    let config = dir.path().join("etc").join("config.toml");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let name = format!("runnel-test-{}", std::process::id());
    if is_root() {
        // gitlab-runner: "Please specify user that will run gitlab-runner service".
        let out = runnel(&units)
            .args(["install", "--service", &name])
            .output()
            .await
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("please specify the user"),
            "{}",
            text(&out)
        );
    }
    let install = |extra: &[&str]| {
        let mut command = runnel(&units);
        command
            .args(["install", "--service", &name, "--user", "nobody", "-c"])
            .arg(&config)
            .arg("-d")
            .arg(&work)
            .args(extra);
        command
    };
    let out = install(&[]).output().await.expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let unit_path = units.join(format!("{name}.service"));
    let unit = std::fs::read_to_string(&unit_path).expect("the unit is written");
    let exec = format!(
        "ExecStart={} \"run\" \"--config\" \"{}\" \"--working-directory\" \"{}\" \"--service\" \"{name}\" \"--user\" \"nobody\"\n",
        env!("CARGO_BIN_EXE_runnel"),
        config.display(),
        work.display()
    );
    assert!(unit.contains(&exec), "{unit}");
    for line in [
        "Restart=always\n",
        "RestartSec=120\n",
        "After=network.target\n",
        "WantedBy=multi-user.target\n",
    ] {
        assert!(unit.contains(line), "missing {line} in {unit}");
    }
    // The config is created as gitlab-runner's install does, private.
    let mode = std::fs::metadata(&config)
        .expect("config created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = install(&[]).output().await.expect("runs");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("is already installed"),
        "{}",
        text(&again)
    );

    let systemd = Path::new("/run/systemd/system").is_dir();
    let status = runnel(&units)
        .args(["status", "--service", &name])
        .output()
        .await
        .expect("runs");
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(
        text(&status).contains(&unit_path.display().to_string()),
        "{}",
        text(&status)
    );
    if systemd {
        eprintln!("systemd runs here: the checks without systemd are left out");
    } else {
        assert!(
            text(&status).contains("systemd is not running here"),
            "{}",
            text(&status)
        );
        let start = runnel(&units)
            .args(["start", "--service", &name])
            .output()
            .await
            .expect("runs");
        assert_eq!(start.status.code(), Some(1));
        assert!(
            text(&start).contains("systemd is not running on this machine"),
            "{}",
            text(&start)
        );
        // The unit's command started by hand (as a container's entrypoint would): status finds it.
        let mut daemon = runnel(&units)
            .args(["run", "--service", &name, "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run starts");
        let pid = daemon.id().expect("pid");
        let mut running = String::new();
        for _ in 0..100 {
            let out = runnel(&units)
                .args(["status", "--service", &name])
                .output()
                .await
                .expect("runs");
            if out.status.success() {
                running = text(&out);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            running.contains(&format!("Service is running (pid {pid}")),
            "{running}"
        );
        daemon.start_kill().expect("kill");
        let _ = daemon.wait().await;
    }

    let out = runnel(&units)
        .args(["uninstall", "--service", &name])
        .output()
        .await
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!unit_path.exists());
    let status = runnel(&units)
        .args(["status", "--service", &name])
        .output()
        .await
        .expect("runs");
    assert_eq!(status.status.code(), Some(1));
    assert!(
        text(&status).contains("is not installed"),
        "{}",
        text(&status)
    );
}

#[tokio::test]
async fn completions_and_man_pages_come_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, marker) in [
        ("bash", "_runnel()"),
        ("zsh", "#compdef runnel"),
        ("fish", "complete -c runnel"),
    ] {
        let out = runnel_command()
            .args(["completions", shell])
            .output()
            .await
            .expect("runs");
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("install") && script.contains("working-directory"),
            "{shell}"
        );
    }
    let out = runnel_command()
        .args(["completions", "tcsh"])
        .output()
        .await
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let out = runnel_command()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let page =
        std::fs::read_to_string(dir.path().join("runnel-install.1")).expect("a page per command");
    assert!(
        page.contains(".TH runnel-install 1") && page.contains("working\\-directory"),
        "{page}"
    );
    assert!(dir.path().join("runnel.1").is_file() && dir.path().join("runnel-run.1").is_file());
}
