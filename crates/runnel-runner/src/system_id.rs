//! The system id: which machine a runner manager is on. GitLab keys its runner manager records
//! on it, so it must stay the same across restarts.
//!
//! GitLab-runner: `commands/internal/configfile/system_id_state.go`. The id is `s_` plus the
//! first 12 hex digits of HMAC-SHA256(key = the OS machine id, message = `gitlab-runner`), or,
//! without a machine id, `r_` plus 12 random alphanumerics. It is kept in `.runner_system_id`
//! beside `config.toml` (mode 0600, no newline); a file with another format is replaced.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::write_private;

/// The file name beside `config.toml`.
pub const SYSTEM_ID_FILE: &str = ".runner_system_id";

/// Reads the system id kept beside `config_path`, or makes one and keeps it there. When the
/// file cannot be written, the id is still returned (gitlab-runner only warns).
pub fn load_or_create(config_path: &Path) -> String {
    let path = system_id_path(config_path);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if is_valid(existing) {
            return existing.to_owned();
        }
    }
    let id = generate();
    if let Err(err) = write_private(&path, id.as_bytes()) {
        tracing::warn!(path = %path.display(), error = %err, "failed to save the system id");
    }
    id
}

/// `.runner_system_id` in the directory of `config_path`.
pub fn system_id_path(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(SYSTEM_ID_FILE),
        _ => PathBuf::from(SYSTEM_ID_FILE),
    }
}

/// Whether `id` has GitLab's format `^[sr]_[0-9a-zA-Z]{12}$`.
pub fn is_valid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 14
        && matches!(bytes[0], b's' | b'r')
        && bytes[1] == b'_'
        && bytes[2..].iter().all(u8::is_ascii_alphanumeric)
}

fn generate() -> String {
    for machine_id_file in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(machine_id) = std::fs::read_to_string(machine_id_file) {
            let machine_id = machine_id.trim();
            if !machine_id.is_empty() {
                let mac = hmac_sha256(machine_id.as_bytes(), b"gitlab-runner");
                return format!("s_{}", &hex::encode(mac)[..12]);
            }
        }
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut random = [0u8; 12];
    if getrandom::fill(&mut random).is_err() {
        random = std::process::id()
            .to_le_bytes()
            .repeat(3)
            .try_into()
            .unwrap_or([7; 12]);
    }
    let tail: String = random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("r_{tail}")
}

/// HMAC-SHA256 (RFC 2104), as `machineid.ProtectedID` computes it.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::{hmac_sha256, is_valid, load_or_create};

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn system_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let first = load_or_create(&config);
        assert!(is_valid(&first), "{first}");
        assert_eq!(load_or_create(&config), first);
        let stored = std::fs::read_to_string(dir.path().join(".runner_system_id")).expect("read");
        assert_eq!(stored, first);
    }

    #[test]
    fn malformed_system_id_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".runner_system_id"), "garbage").expect("write");
        let id = load_or_create(&dir.path().join("config.toml"));
        assert!(is_valid(&id));
    }
}
