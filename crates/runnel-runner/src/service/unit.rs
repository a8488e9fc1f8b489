//! The systemd unit `runnel install` writes. It is the unit gitlab-runner writes through
//! kardianos/service (`service_systemd_linux.go`, `systemdScript`) with gitlab-runner's options
//! (`commands/service_linux.go`: `After=network.target`, `Restart=always`, `--user` appended to
//! the arguments), so an operator who knows the one knows the other.

use std::path::PathBuf;

/// What the unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The service name (`--service`), also the unit's file name without `.service`.
    pub name: String,
    /// The `runnel` binary.
    pub executable: PathBuf,
    /// `--config`.
    pub config: PathBuf,
    /// `--working-directory`.
    pub working_directory: Option<PathBuf>,
    /// `--user`: the user shell-executor jobs run as (the daemon itself runs as root).
    pub user: Option<String>,
    /// `--init-user`: the user the daemon itself runs as (systemd's `User=`).
    pub init_user: Option<String>,
    /// `--syslog`.
    pub syslog: bool,
}

impl UnitSpec {
    /// The arguments of `ExecStart` after the binary, in gitlab-runner's order
    /// (`GetServiceArguments`, then `--user` from `setupOSServiceConfig`).
    pub fn arguments(&self) -> Vec<String> {
        let mut args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            self.config.display().to_string(),
        ];
        if let Some(dir) = &self.working_directory {
            args.push("--working-directory".to_owned());
            args.push(dir.display().to_string());
        }
        args.push("--service".to_owned());
        args.push(self.name.clone());
        if self.syslog {
            args.push("--syslog".to_owned());
        }
        if let Some(user) = self.user.as_deref().filter(|u| !u.is_empty()) {
            args.push("--user".to_owned());
            args.push(user.to_owned());
        }
        args
    }

    /// The unit file's text.
    pub fn render(&self) -> String {
        let exec = std::iter::once(escape_path(&self.executable.display().to_string()))
            .chain(self.arguments().iter().map(|arg| quote(arg)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut service = vec![
            // kardianos/service keeps systemd's older names for the start limit in [Service].
            "StartLimitInterval=5".to_owned(),
            "StartLimitBurst=10".to_owned(),
            format!("ExecStart={exec}"),
        ];
        if let Some(user) = self.init_user.as_deref().filter(|u| !u.is_empty()) {
            service.push(format!("User={user}"));
        }
        service.extend([
            "Restart=always".to_owned(),
            "RestartSec=120".to_owned(),
            format!("EnvironmentFile=-/etc/sysconfig/{}", self.name),
            // Debian's place for a service's environment (the package ships it as a conffile).
            format!("EnvironmentFile=-/etc/default/{}", self.name),
        ]);
        format!(
            "[Unit]\n\
             Description=runnel, a GitLab-compatible CI runner\n\
             ConditionFileIsExecutable={path}\n\
             After=network.target\n\
             \n\
             [Service]\n\
             {service}\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            path = escape_path(&self.executable.display().to_string()),
            service = service.join("\n"),
        )
    }
}

/// A path in a unit file: spaces as `\x20` (kardianos's `cmdEscape`), `%` doubled.
fn escape_path(path: &str) -> String {
    path.replace('%', "%%").replace(' ', "\\x20")
}

/// One `ExecStart` argument, double-quoted (kardianos's `cmd`); `\`, `"`, `%` and `$` escaped
/// for systemd.
fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The command line of the unit's `ExecStart=` (binary first), unquoted; `None` when the unit
/// has none. Undoes what [`UnitSpec::render`] writes, enough for `status` to say what the unit
/// runs when systemd cannot be asked.
pub fn parse_exec_start(unit: &str) -> Option<Vec<String>> {
    let line = unit
        .lines()
        .find_map(|line| line.trim().strip_prefix("ExecStart="))?;
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => word.extend(chars.next()),
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            word = word.replace("\\x20", " ");
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            name: "runnel".into(),
            executable: "/usr/bin/runnel".into(),
            config: "/etc/runnel/config.toml".into(),
            working_directory: Some("/var/lib/runnel".into()),
            user: Some("runnel".into()),
            init_user: None,
            syslog: false,
        }
    }

    #[test]
    fn the_unit_is_gitlab_runners_with_runnels_names() {
        insta::assert_snapshot!(spec().render());
    }

    /// The Debian package ships the unit `runnel install` writes for the package's user and
    /// directories; this keeps the two from drifting apart.
    #[test]
    fn the_packaged_unit_is_what_install_writes() {
        let packaged = include_str!("../../../../packaging/deb/runnel.service");
        assert_eq!(packaged, spec().render());
    }

    #[test]
    fn exec_start_round_trips_through_quoting() {
        let mut spec = spec();
        spec.working_directory = Some("/srv/my runner/100%".into());
        spec.executable = "/opt/run nel/runnel".into();
        spec.config = "/etc/a \"b\"/c$d.toml".into();
        spec.syslog = true;
        let words = parse_exec_start(&spec.render()).expect("an ExecStart line");
        let mut expected = vec!["/opt/run nel/runnel".to_owned()];
        expected.extend(spec.arguments());
        assert_eq!(words, expected);
    }

    #[test]
    fn init_user_becomes_the_units_user() {
        let mut spec = spec();
        spec.user = None;
        spec.init_user = Some("ci".into());
        let unit = spec.render();
        assert!(unit.contains("\nUser=ci\n"), "{unit}");
        assert!(!unit.contains("--user"), "{unit}");
    }
}
