//! Streaming replacement of secrets with `[MASKED]`.
//!
//! GitLab: gitlab-runner `helpers/trace/internal/masker` and `internal/tokensanitizer`. Phrases
//! are the values of masked variables (after expansion, trimmed, de-duplicated, empty ones
//! dropped); the runner itself imposes no minimum length, the 8-character rule is GitLab's
//! validation when a variable is saved. Token prefixes such as `glpat-` keep the prefix and mask
//! the token characters that follow. Bytes that may be the start of a secret are held back until
//! the next chunk decides, so a secret split across chunks is still masked.

const MASKED: &[u8] = b"[MASKED]";

/// Prefixes of GitLab tokens masked wherever they appear (gitlab-runner `FF_MASK_ALL_DEFAULT_TOKENS`,
/// default on).
pub(crate) const DEFAULT_TOKEN_PREFIXES: &[&str] = &[
    "glpat-",
    "gloas-",
    "gldt-",
    "glrt-",
    "glcbt-",
    "glrtr-",
    "glptt-",
    "glft-",
    "glimt-",
    "glagent-",
    "glsoat-",
    "glffct-",
    "_gitlab_session=",
    "gltok-",
];

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'=' | b'-')
}

/// A streaming masker.
#[derive(Debug)]
pub(crate) struct Masker {
    phrases: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    first_bytes: [bool; 256],
    pending: Vec<u8>,
}

impl Default for Masker {
    fn default() -> Self {
        Self {
            phrases: Vec::new(),
            prefixes: Vec::new(),
            first_bytes: [false; 256],
            pending: Vec::new(),
        }
    }
}

enum Match {
    /// A whole phrase or a whole token of this length.
    Full(usize, Kind),
    /// The rest of the input is the start of a phrase or token.
    Partial,
    None,
}

enum Kind {
    Phrase,
    Token { prefix_len: usize },
}

impl Masker {
    /// A masker for `phrases` (also masked in their URL-encoded form) and token `prefixes`.
    pub(crate) fn new<'a>(
        phrases: impl IntoIterator<Item = &'a str>,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut masker = Self::default();
        for phrase in phrases {
            let phrase = phrase.trim();
            if phrase.is_empty() {
                continue;
            }
            let encoded = url_encode(phrase);
            for candidate in [phrase.as_bytes().to_vec(), encoded.into_bytes()] {
                if !masker.phrases.contains(&candidate) {
                    masker.phrases.push(candidate);
                }
            }
        }
        // Longest first, so a phrase containing another is masked whole.
        masker.phrases.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for prefix in prefixes {
            if !prefix.is_empty() && !masker.prefixes.iter().any(|p| p == prefix.as_bytes()) {
                masker.prefixes.push(prefix.as_bytes().to_vec());
            }
        }
        for candidate in masker.phrases.iter().chain(&masker.prefixes) {
            masker.first_bytes[usize::from(candidate[0])] = true;
        }
        masker
    }

    /// Masks `chunk`, appending what is certain to `out`; bytes that may start a secret wait.
    pub(crate) fn write(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.phrases.is_empty() && self.prefixes.is_empty() {
            out.extend_from_slice(chunk);
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(chunk);
        let kept = self.scan(&pending, false, out);
        pending.drain(..kept);
        self.pending = pending;
    }

    /// Emits everything held back, masking what is there.
    pub(crate) fn flush(&mut self, out: &mut Vec<u8>) {
        let _ = self.scan(&self.pending, true, out);
        self.pending.clear();
    }

    /// Scans `input`; returns where the held-back tail starts (`input.len()` when nothing waits).
    fn scan(&self, input: &[u8], at_end: bool, out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        let mut plain = 0;
        while pos < input.len() {
            if !self.first_bytes[usize::from(input[pos])] {
                pos += 1;
                continue;
            }
            match self.match_at(&input[pos..], at_end) {
                Match::Full(len, kind) => {
                    out.extend_from_slice(&input[plain..pos]);
                    if let Kind::Token { prefix_len } = kind {
                        out.extend_from_slice(&input[pos..pos + prefix_len]);
                    }
                    out.extend_from_slice(MASKED);
                    pos += len;
                    plain = pos;
                }
                Match::Partial => {
                    out.extend_from_slice(&input[plain..pos]);
                    return pos;
                }
                Match::None => pos += 1,
            }
        }
        out.extend_from_slice(&input[plain..]);
        input.len()
    }

    fn match_at(&self, rest: &[u8], at_end: bool) -> Match {
        let mut partial = false;
        for phrase in &self.phrases {
            if rest.starts_with(phrase) {
                return Match::Full(phrase.len(), Kind::Phrase);
            }
            if !at_end && phrase.starts_with(rest) {
                partial = true;
            }
        }
        for prefix in &self.prefixes {
            if rest.starts_with(prefix) {
                let token = rest[prefix.len()..]
                    .iter()
                    .take_while(|&&c| is_token_char(c))
                    .count();
                let end = prefix.len() + token;
                if end == rest.len() && !at_end {
                    return Match::Partial;
                }
                if token > 0 {
                    return Match::Full(
                        end,
                        Kind::Token {
                            prefix_len: prefix.len(),
                        },
                    );
                }
            } else if !at_end && prefix.starts_with(rest) {
                partial = true;
            }
        }
        if partial { Match::Partial } else { Match::None }
    }
}

/// Percent-encodes like Go's `url.QueryEscape` (space as `+`), so secrets in URLs are masked too.
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_TOKEN_PREFIXES, Masker};

    fn run(masker: &mut Masker, chunks: &[&str]) -> String {
        let mut out = Vec::new();
        for chunk in chunks {
            masker.write(chunk.as_bytes(), &mut out);
        }
        masker.flush(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn masks_a_phrase_split_across_chunks() {
        let mut masker = Masker::new(["s3cr3t-value"], []);
        assert_eq!(
            run(&mut masker, &["a s3c", "r3t-v", "alue b"]),
            "a [MASKED] b"
        );
    }

    #[test]
    fn releases_a_false_start() {
        let mut masker = Masker::new(["s3cr3t-value"], []);
        assert_eq!(run(&mut masker, &["a s3c", "x s3"]), "a s3cx s3");
    }

    #[test]
    fn masks_url_encoded_form() {
        let mut masker = Masker::new(["p@ss word!"], []);
        assert_eq!(run(&mut masker, &["u=p%40ss+word%21&x"]), "u=[MASKED]&x");
    }

    #[test]
    fn masks_token_prefixes_keeping_the_prefix() {
        let mut masker = Masker::new([], DEFAULT_TOKEN_PREFIXES.iter().copied());
        assert_eq!(
            run(&mut masker, &["t=glpat-ab", "cd12 glpat- x"]),
            "t=glpat-[MASKED] glpat- x"
        );
    }

    proptest::proptest! {
        /// However the output is cut into chunks, the result is the same as masking it whole,
        /// and no secret survives.
        #[test]
        fn chunking_does_not_change_the_result(
            text in "[a-z$ \\n-]{0,60}",
            cuts in proptest::collection::vec(0usize..80, 0..8),
        ) {
            let secrets = ["abc$def", "zz-zz", "glpat-"];
            let input = format!("{text}abc$def{text}zz-zz glpat-tok3n {text}");
            let mut whole = Masker::new(secrets[..2].iter().copied(), [secrets[2]]);
            let expected = run(&mut whole, &[&input]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&input[start..cut]);
                start = cut;
            }
            chunks.push(&input[start..]);
            let mut chunked = Masker::new(secrets[..2].iter().copied(), [secrets[2]]);
            let got = run(&mut chunked, &chunks);
            proptest::prop_assert_eq!(&got, &expected);
            proptest::prop_assert!(!got.contains("abc$def") && !got.contains("zz-zz") && !got.contains("tok3n"));
        }
    }

    #[test]
    fn longest_phrase_wins() {
        let mut masker = Masker::new(["abcdefgh", "abcdefghijkl"], []);
        assert_eq!(run(&mut masker, &["xabcdefghijkly"]), "x[MASKED]y");
    }
}
