//! The job variables that tune how runnel runs the build stages rather than what the scripts
//! see: stage attempts, the stage retry backoff, and the compression of caches and artifacts.
//!
//! GitLab: gitlab-runner `common/build_settings.go` (`validate`: an empty value takes the default
//! silently, a value that is not an integer takes the default and adds a setting error that the
//! job prints as one warning; `EXECUTOR_JOB_SECTION_ATTEMPTS` outside 1–10 falls back to 1 the
//! same way), `common/build.go` `attemptExecuteStage` (the three stage attempts are range-checked
//! only when the stage runs, and out of range is a system failure), `helpers/featureflags`
//! (`FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY`, on by default) and `commands/helpers/archiver.go`
//! (`getCompressionLevel`).

use crate::variables::JobVariables;

/// gitlab-runner `common/consts.go` `DefaultGetSourcesAttempts` and its three siblings.
pub(crate) const DEFAULT_ATTEMPTS: i64 = 1;

/// The feature flag that puts an exponential backoff between stage attempts.
pub(crate) const FF_EXPONENTIAL_BACKOFF: &str = "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY";

/// The feature flag that prefixes trace lines with their time. Off by default in runnel;
/// gitlab-runner's `featureflags.UseTimestamps` now defaults to on.
pub(crate) const FF_TIMESTAMPS: &str = "FF_TIMESTAMPS";

/// What the job variables ask of the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// `GET_SOURCES_ATTEMPTS`, not yet range-checked.
    pub get_sources_attempts: i64,
    /// `ARTIFACT_DOWNLOAD_ATTEMPTS`, not yet range-checked.
    pub artifact_download_attempts: i64,
    /// `RESTORE_CACHE_ATTEMPTS`, not yet range-checked.
    pub restore_cache_attempts: i64,
    /// `EXECUTOR_JOB_SECTION_ATTEMPTS`, always within 1–10: how often gitlab-runner's Docker
    /// executor runs a section again after its container vanished. runnel reads it only for
    /// gitlab-runner's warning about a value out of range; no executor runs a section again.
    pub executor_job_section_attempts: u32,
    /// `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY`: wait 5 s, then up to 1.5 times longer (at most
    /// 5 min), between stage attempts.
    pub exponential_backoff: bool,
    /// `FF_TIMESTAMPS`: every trace line starts with its time and stream.
    pub timestamps: bool,
    /// `CACHE_COMPRESSION_FORMAT`.
    pub cache_format: ArchiveFormat,
    /// `CACHE_COMPRESSION_LEVEL`; `Err` holds a value that is not a level.
    pub cache_level: Result<CompressionLevel, String>,
    /// `ARTIFACT_COMPRESSION_LEVEL`; `Err` holds a value that is not a level.
    pub artifact_level: Result<CompressionLevel, String>,
    /// The setting errors, in gitlab-runner's words, printed once as a warning before the job.
    pub errors: Vec<String>,
}

impl BuildSettings {
    /// Reads the settings from the job's final variables.
    pub fn from_variables(variables: &JobVariables) -> Self {
        let mut errors = Vec::new();
        let mut attempts = |name: &str| {
            let (value, error) = parse_int(name, variables.get(name), DEFAULT_ATTEMPTS);
            errors.extend(error);
            value
        };
        let get_sources_attempts = attempts("GET_SOURCES_ATTEMPTS");
        let artifact_download_attempts = attempts("ARTIFACT_DOWNLOAD_ATTEMPTS");
        let restore_cache_attempts = attempts("RESTORE_CACHE_ATTEMPTS");
        let section = attempts("EXECUTOR_JOB_SECTION_ATTEMPTS");
        let executor_job_section_attempts = match attempts_in_range(section) {
            Some(n) => n,
            None => {
                errors.push(format!(
                    "EXECUTOR_JOB_SECTION_ATTEMPTS: number of attempts out of the range [1, 10], \
                     using default {DEFAULT_ATTEMPTS}"
                ));
                1
            }
        };
        let exponential_backoff =
            feature_flag(variables, FF_EXPONENTIAL_BACKOFF, true, &mut errors);
        let timestamps = feature_flag(variables, FF_TIMESTAMPS, false, &mut errors);
        Self {
            get_sources_attempts,
            artifact_download_attempts,
            restore_cache_attempts,
            executor_job_section_attempts,
            exponential_backoff,
            timestamps,
            cache_format: ArchiveFormat::parse(variables.get("CACHE_COMPRESSION_FORMAT")),
            cache_level: CompressionLevel::parse(variables.get("CACHE_COMPRESSION_LEVEL")),
            artifact_level: CompressionLevel::parse(variables.get("ARTIFACT_COMPRESSION_LEVEL")),
            errors,
        }
    }
}

/// gitlab-runner `populateFeatureFlags`: a job variable that is not a Go bool keeps the
/// default and adds `NAME: could not parse feature flag, expected bool, got raw`.
fn feature_flag(
    variables: &JobVariables,
    name: &str,
    default: bool,
    errors: &mut Vec<String>,
) -> bool {
    match variables.get(name) {
        None => default,
        Some(raw) => go_parse_bool(raw).unwrap_or_else(|| {
            errors.push(format!(
                "{name}: could not parse feature flag, expected bool, got {raw}"
            ));
            default
        }),
    }
}

/// `attempts` when it is within gitlab-runner's range of 1–10.
pub(crate) fn attempts_in_range(attempts: i64) -> Option<u32> {
    u32::try_from(attempts)
        .ok()
        .filter(|n| (1..=10).contains(n))
}

/// gitlab-runner `validate` for an `int`: empty → the default; not an integer → the default and
/// the error `NAME: expected int got "raw", using default value: 1`.
fn parse_int(name: &str, raw: Option<&str>, default: i64) -> (i64, Option<String>) {
    match raw {
        None | Some("") => (default, None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(value) => (value, None),
            Err(_) => (
                default,
                Some(format!(
                    "{name}: expected int got {}, using default value: {default}",
                    go_quote(raw)
                )),
            ),
        },
    }
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `%q` for the printable strings job variables are.
fn go_quote(raw: &str) -> String {
    format!("{raw:?}")
}

/// The archive format of a cache (`CACHE_COMPRESSION_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// A zip archive (the default, and what any other value means).
    #[default]
    Zip,
    /// A tar stream compressed with Zstandard.
    TarZstd,
}

impl ArchiveFormat {
    /// gitlab-runner `cache_archiver.go` `createZipFile`: `tarzstd` in any case, else zip.
    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some(raw) if raw.eq_ignore_ascii_case("tarzstd") => Self::TarZstd,
            _ => Self::Zip,
        }
    }
}

/// A compression level (`CACHE_COMPRESSION_LEVEL`, `ARTIFACT_COMPRESSION_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionLevel {
    /// `fastest`: zip stores without compressing.
    Fastest,
    /// `fast`.
    Fast,
    /// `default` (also the empty value).
    #[default]
    Default,
    /// `slow`.
    Slow,
    /// `slowest`.
    Slowest,
}

impl CompressionLevel {
    /// gitlab-runner `getCompressionLevel`; `Err` carries a value that is not a level (the
    /// archiver warns `compression level "x" is invalid, falling back to default`).
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.unwrap_or("") {
            "fastest" => Ok(Self::Fastest),
            "fast" => Ok(Self::Fast),
            "default" | "" => Ok(Self::Default),
            "slow" => Ok(Self::Slow),
            "slowest" => Ok(Self::Slowest),
            other => Err(other.to_owned()),
        }
    }

    /// The deflate level of a zip entry, `None` to store (gitlab-runner
    /// `archive/fastzip/zip_fastzip_archiver.go` `flateLevels`).
    pub(crate) fn deflate(self) -> Option<i64> {
        match self {
            Self::Fastest => None,
            Self::Fast => Some(1),
            Self::Default => Some(5),
            Self::Slow => Some(7),
            Self::Slowest => Some(9),
        }
    }

    /// The Zstandard level (gitlab-runner `archive/tarzstd` maps to klauspost's encoder speeds
    /// Fastest, Fastest, Default, BetterCompression, BestCompression, which its documentation
    /// equates with zstd levels 1, 1, 3, 7 and 11).
    pub(crate) fn zstd(self) -> i32 {
        match self {
            Self::Fastest | Self::Fast => 1,
            Self::Default => 3,
            Self::Slow => 7,
            Self::Slowest => 11,
        }
    }
}

/// The level to use, with the warning gitlab-runner's archiver prints for a bad value.
pub(crate) fn level_or_warning(
    level: &Result<CompressionLevel, String>,
) -> (CompressionLevel, Option<String>) {
    match level {
        Ok(level) => (*level, None),
        Err(raw) => (
            CompressionLevel::Default,
            Some(format!(
                "compression level {} is invalid, falling back to default",
                go_quote(raw)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BuildSettings {
        BuildSettings::from_variables(&JobVariables::from_pairs(pairs))
    }

    #[test]
    fn attempts_default_to_one_without_an_error() {
        let s = settings(&[("GET_SOURCES_ATTEMPTS", "")]);
        assert_eq!(
            (
                s.get_sources_attempts,
                s.artifact_download_attempts,
                s.restore_cache_attempts,
                s.executor_job_section_attempts
            ),
            (1, 1, 1, 1)
        );
        assert!(s.errors.is_empty());
        assert!(s.exponential_backoff);
        assert!(!s.timestamps);
        assert!(settings(&[(FF_TIMESTAMPS, "true")]).timestamps);
    }

    #[test]
    fn a_non_integer_attempt_count_falls_back_to_one_with_gitlab_runners_error() {
        let s = settings(&[
            ("GET_SOURCES_ATTEMPTS", "three"),
            ("RESTORE_CACHE_ATTEMPTS", "4"),
        ]);
        assert_eq!((s.get_sources_attempts, s.restore_cache_attempts), (1, 4));
        assert_eq!(
            s.errors,
            ["GET_SOURCES_ATTEMPTS: expected int got \"three\", using default value: 1"]
        );
    }

    #[test]
    fn out_of_range_stage_attempts_are_kept_for_the_stage_to_refuse() {
        let s = settings(&[
            ("ARTIFACT_DOWNLOAD_ATTEMPTS", "11"),
            ("GET_SOURCES_ATTEMPTS", "0"),
        ]);
        assert_eq!(
            (s.artifact_download_attempts, s.get_sources_attempts),
            (11, 0)
        );
        assert!(s.errors.is_empty());
        assert_eq!(attempts_in_range(11), None);
        assert_eq!(attempts_in_range(0), None);
        assert_eq!(attempts_in_range(-3), None);
        assert_eq!(attempts_in_range(10), Some(10));
    }

    #[test]
    fn executor_job_section_attempts_out_of_range_fall_back_to_one() {
        let s = settings(&[("EXECUTOR_JOB_SECTION_ATTEMPTS", "12")]);
        assert_eq!(s.executor_job_section_attempts, 1);
        assert_eq!(
            s.errors,
            [
                "EXECUTOR_JOB_SECTION_ATTEMPTS: number of attempts out of the range [1, 10], using default 1"
            ]
        );
        assert_eq!(
            settings(&[("EXECUTOR_JOB_SECTION_ATTEMPTS", "+3")]).executor_job_section_attempts,
            3
        );
    }

    #[test]
    fn the_backoff_feature_flag_parses_like_go() {
        assert!(!settings(&[(FF_EXPONENTIAL_BACKOFF, "False")]).exponential_backoff);
        assert!(settings(&[(FF_EXPONENTIAL_BACKOFF, "1")]).exponential_backoff);
        let bad = settings(&[(FF_EXPONENTIAL_BACKOFF, "no")]);
        assert!(bad.exponential_backoff);
        assert_eq!(
            bad.errors,
            [
                "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY: could not parse feature flag, expected bool, got no"
            ]
        );
    }

    #[test]
    fn cache_format_is_tarzstd_in_any_case_and_zip_otherwise() {
        assert_eq!(
            ArchiveFormat::parse(Some("TarZstd")),
            ArchiveFormat::TarZstd
        );
        assert_eq!(ArchiveFormat::parse(Some("zip")), ArchiveFormat::Zip);
        assert_eq!(ArchiveFormat::parse(Some("7z")), ArchiveFormat::Zip);
        assert_eq!(ArchiveFormat::parse(None), ArchiveFormat::Zip);
    }

    #[test]
    fn compression_levels_map_to_fastzip_and_zstd_levels() {
        let levels = ["fastest", "fast", "default", "slow", "slowest"]
            .map(|raw| CompressionLevel::parse(Some(raw)).expect("a level"));
        assert_eq!(
            levels.map(CompressionLevel::deflate),
            [None, Some(1), Some(5), Some(7), Some(9)]
        );
        assert_eq!(levels.map(CompressionLevel::zstd), [1, 1, 3, 7, 11]);
        let (level, warning) = level_or_warning(&CompressionLevel::parse(Some("max")));
        assert_eq!(level, CompressionLevel::Default);
        assert_eq!(
            warning.as_deref(),
            Some("compression level \"max\" is invalid, falling back to default")
        );
    }
}
