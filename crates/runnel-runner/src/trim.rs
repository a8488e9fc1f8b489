//! Releases the pages of the `runnel` binary that only start-up needed.
//!
//! Start-up (argument parsing, the config parser, TLS and runtime set-up, the metrics registry)
//! touches about 4 MiB of the binary's code and read-only data that the idle daemon never runs
//! again, yet those file-backed pages stay counted in its RSS for the daemon's whole life.
//! Once the daemon is up, and again each time it has been idle for a while after a job (see
//! `daemon::release_idle_pages`), [`release_start_up_pages`] asks the kernel to reclaim the
//! binary's read-only mappings (`MADV_PAGEOUT`, Linux 5.4+); the polling loop faults back in
//! only the code it really runs. Nothing changes for the program: these pages are clean copies of the
//! file and are read again on the next access. The kernel skips pages another process also maps
//! (a second daemon, a running `runnel exec`), so the trim never takes memory from anyone else.
//!
//! `RUNNEL_TRIM_START_UP=0` turns it off (to measure the difference).

use std::path::Path;

/// What the trim did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Mappings advised.
    pub mappings: usize,
    /// Their total length in bytes.
    pub bytes: usize,
}

/// Advises the kernel to reclaim the read-only, file-backed mappings of this process's own
/// executable. Errors (an older kernel, no `/proc`) are logged at debug level and ignored:
/// the trim is an optimisation only.
pub fn release_start_up_pages() -> Trimmed {
    if std::env::var_os("RUNNEL_TRIM_START_UP").is_some_and(|v| v == "0") {
        return Trimmed::default();
    }
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return Trimmed::default();
    };
    let mut trimmed = Trimmed::default();
    for (start, end) in read_only_mappings_of(&maps, &exe) {
        match page_out(start, end - start) {
            Ok(()) => {
                trimmed.mappings += 1;
                trimmed.bytes += end - start;
            }
            Err(errno) => {
                tracing::debug!(%errno, "madvise(MADV_PAGEOUT) failed; start-up pages stay resident");
                break;
            }
        }
    }
    trimmed
}

/// The `(start, end)` addresses of the mappings of `exe` in a `/proc/<pid>/maps` text that
/// are not writable (code and read-only data; writable ones may hold private changes).
fn read_only_mappings_of(maps: &str, exe: &Path) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // The path is the rest of the line: it may contain spaces (" (deleted)").
            let path = &line[line.find('/')?..];
            if Path::new(path) != exe || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

fn page_out(start: usize, len: usize) -> nix::Result<()> {
    let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return Ok(());
    };
    // SAFETY: `addr..addr+len` is a whole mapping of our own executable, read from
    // /proc/self/maps, and not writable. MADV_PAGEOUT only reclaims pages; it never changes
    // what a later read of the mapping returns (clean file pages are read again from the file).
    unsafe { nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_PAGEOUT) }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{read_only_mappings_of, release_start_up_pages};

    const MAPS: &str = "\
55d0c0000000-55d0c0200000 r--p 00000000 fd:01 1234 /usr/local/bin/runnel
55d0c0200000-55d0c0e00000 r-xp 00200000 fd:01 1234 /usr/local/bin/runnel
55d0c0e00000-55d0c1000000 r--p 00e00000 fd:01 1234 /usr/local/bin/runnel
55d0c1000000-55d0c1010000 rw-p 01000000 fd:01 1234 /usr/local/bin/runnel
55d0c1010000-55d0c1020000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 r-xp 00000000 fd:01 98 /usr/local/bin/runnel (deleted)
";

    #[test]
    fn only_the_executables_read_only_mappings_are_trimmed() {
        let found = read_only_mappings_of(MAPS, Path::new("/usr/local/bin/runnel"));
        assert_eq!(
            found,
            vec![
                (0x55d0c0000000, 0x55d0c0200000),
                (0x55d0c0200000, 0x55d0c0e00000),
                (0x55d0c0e00000, 0x55d0c1000000),
            ]
        );
    }

    #[test]
    fn trimming_this_test_binary_reclaims_and_keeps_it_running() {
        let trimmed = release_start_up_pages();
        assert!(trimmed.mappings >= 2, "{trimmed:?}");
        assert!(trimmed.bytes > 0, "{trimmed:?}");
        // The pages are read back on use: the parser paged out above still runs and finds
        // the mappings it advised.
        let exe = std::fs::read_link("/proc/self/exe").expect("own executable");
        let maps = std::fs::read_to_string("/proc/self/maps").expect("own maps");
        assert_eq!(read_only_mappings_of(&maps, &exe).len(), trimmed.mappings);
    }
}
