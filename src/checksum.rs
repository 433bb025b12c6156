//! Section checksums (SPEC 3): SHA-256 over the text after a fixed, small set
//! of normalisations, so that line-ending or trailing-blank churn from editors
//! is not drift while every real edit, comments included, is.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `text` after normalisation.
pub fn section_checksum(text: &str) -> String {
    let mut hasher = Sha256::new();
    feed_normalized(&mut hasher, text);
    hex(&hasher.finalize())
}

/// Lowercase hex SHA-256 of raw bytes (no normalisation).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Streams the normalised form of `text` into `hasher` without building it:
/// BOM dropped, CRLF → LF, trailing spaces/tabs cut, leading and trailing blank
/// lines dropped, lines joined by `\n` with no final newline.
fn feed_normalized(hasher: &mut Sha256, text: &str) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pending_blank_lines = 0usize;
    let mut started = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_end_matches([' ', '\t']);
        if line.is_empty() {
            pending_blank_lines += 1;
            continue;
        }
        if started {
            // The newline ending the previous line, then any blank lines between.
            for _ in 0..=pending_blank_lines {
                hasher.update(b"\n");
            }
        }
        started = true;
        pending_blank_lines = 0;
        hasher.update(line.as_bytes());
    }
}

/// Checksum of a run of statements (the completed prefix of an interrupted
/// section), so a resume can tell whether they were edited since.
pub fn statements_checksum<'a>(statements: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for sql in statements {
        feed_normalized(&mut hasher, sql);
        // A separator that cannot occur in text, so [a, b] and [ab] differ.
        hasher.update([0u8]);
    }
    hex(&hasher.finalize())
}

/// The normalised text itself; used by tests and by `plan` output.
pub fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> =
        text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).trim_end_matches([' ', '\t'])).collect();
    let first = lines.iter().position(|l| !l.is_empty());
    let last = lines.iter().rposition(|l| !l.is_empty());
    match (first, last) {
        (Some(a), Some(b)) => lines[a..=b].join("\n"),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(section_checksum("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn normalisations_do_not_change_the_checksum() {
        let base = section_checksum("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);");
        for variant in [
            "CREATE TABLE t (id int);\r\nINSERT INTO t VALUES (1);\r\n",
            "\u{feff}CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);",
            "\n\n  \nCREATE TABLE t (id int);  \t\nINSERT INTO t VALUES (1);\n\n\t\n",
        ] {
            assert_eq!(section_checksum(variant), base, "{variant:?}");
        }
    }

    #[test]
    fn real_edits_change_the_checksum() {
        let base = section_checksum("SELECT 1;\nSELECT 2;");
        for variant in [
            "SELECT 1;\n\nSELECT 2;",    // inner blank line
            "SELECT 1;\n  SELECT 2;",    // leading indentation
            "SELECT 1; -- x\nSELECT 2;", // comment
            "select 1;\nSELECT 2;",
        ] {
            assert_ne!(section_checksum(variant), base, "{variant:?}");
        }
    }

    #[test]
    fn streaming_matches_normalize() {
        for text in ["", "\n\n", "a", " a \r\n\r\n b\t\n", "\u{feff}\na\n\n\nb\n"] {
            assert_eq!(section_checksum(text), sha256_hex(normalize(text).as_bytes()), "{text:?}");
        }
    }
}
