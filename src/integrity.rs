//! `releases/pygrate.sum` (SPEC 3): every section's checksum in global order
//! and a last line over all of them, so CI can verify files without a
//! database, and two branches that both add versions collide in git.
//!
//! Format, one line per section, LF endings, UTF-8:
//! ```text
//! 2026.01/v001-create-users add 3b1c…64 hex…
//! 2026.01/v001-create-users rollback_add 9f2e…
//! total 5d41…   (SHA-256 of all the bytes above this line)
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::fs;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::checksum::sha256_hex;
use crate::error::Error;
use crate::parser::Migration;
use crate::phase::SectionKind;
use crate::project::Project;

pub const SUM_FILE: &str = "pygrate.sum";
const TOTAL: &str = "total";

/// The sum file's exact bytes for these migrations (already in global order).
pub fn sum_text(migrations: &[Migration]) -> String {
    let mut text = String::new();
    for m in migrations {
        for kind in SectionKind::ALL {
            if let Some(section) = m.section(kind) {
                text.push_str(&format!("{} {kind} {}\n", m.id, section.checksum));
            }
        }
    }
    let total = sha256_hex(text.as_bytes());
    text.push_str(&format!("{TOTAL} {total}\n"));
    text
}

pub fn sum_path(project: &Project) -> PathBuf {
    project.releases_dir().join(SUM_FILE)
}

/// Writes `releases/pygrate.sum`; returns its path.
pub fn write_sum(project: &Project, migrations: &[Migration]) -> Result<PathBuf, Error> {
    let path = sum_path(project);
    let dir = project.releases_dir();
    fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir, source })?;
    // Written beside, then renamed: a reader never sees half a file.
    let tmp = path.with_extension("sum.tmp");
    fs::write(&tmp, sum_text(migrations)).map_err(|source| Error::Io { path: tmp.clone(), source })?;
    fs::rename(&tmp, &path).map_err(|source| Error::Io { path: path.clone(), source })?;
    Ok(path)
}

/// A difference between the files and `pygrate.sum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SumProblem {
    /// There is no sum file to check against.
    Missing,
    /// A section's text differs from what the sum recorded.
    Changed { id: String, section: String, recorded: String, current: String },
    /// A section the sum does not know (a new version, or a new section).
    Unrecorded { id: String, section: String },
    /// A section the sum records but the files no longer have.
    Removed { id: String, section: String },
    /// The sum file itself was edited by hand or merged badly.
    Corrupt { line: usize, reason: String },
}

impl SumProblem {
    pub fn code(&self) -> &'static str {
        match self {
            SumProblem::Missing => "sum_missing",
            SumProblem::Changed { .. } => "sum_changed",
            SumProblem::Unrecorded { .. } => "sum_unrecorded",
            SumProblem::Removed { .. } => "sum_removed",
            SumProblem::Corrupt { .. } => "sum_corrupt",
        }
    }

    pub fn message(&self) -> String {
        match self {
            SumProblem::Missing => format!("releases/{SUM_FILE} does not exist; create it with `pygrate sum` and commit it"),
            SumProblem::Changed { id, section, recorded, current } => format!(
                "{id}: section `{section}` changed since `pygrate sum` (recorded {recorded}, now {current}); \
                 if the edit is intended and {section} has not run anywhere, run `pygrate sum`"
            ),
            SumProblem::Unrecorded { id, section } => {
                format!("{id}: section `{section}` is not in releases/{SUM_FILE}; run `pygrate sum` and commit it")
            }
            SumProblem::Removed { id, section } => format!(
                "{id}: section `{section}` is in releases/{SUM_FILE} but not in the files; restore it, or run `pygrate sum`"
            ),
            SumProblem::Corrupt { line, reason } => {
                format!("releases/{SUM_FILE}:{line}: {reason}; regenerate it with `pygrate sum` (after a merge: once both sides are in)")
            }
        }
    }

    /// What `pygrate sum` does about it, for `-n sum`.
    pub fn change(&self) -> String {
        match self {
            SumProblem::Missing => "a new file".to_string(),
            SumProblem::Changed { id, section, .. } => format!("{id} {section}: changed"),
            SumProblem::Unrecorded { id, section } => format!("{id} {section}: added"),
            SumProblem::Removed { id, section } => format!("{id} {section}: removed"),
            SumProblem::Corrupt { line, reason } => format!("line {line} rewritten: {reason}"),
        }
    }

    pub fn to_json(&self) -> Value {
        let (id, section) = match self {
            SumProblem::Changed { id, section, .. }
            | SumProblem::Unrecorded { id, section }
            | SumProblem::Removed { id, section } => (Some(id.as_str()), Some(section.as_str())),
            SumProblem::Missing | SumProblem::Corrupt { .. } => (None, None),
        };
        // A release name holds no `/`: the id splits at its first one.
        let (release, version) = id.and_then(|id| id.split_once('/')).unzip();
        let mut v = json!({
            "code": self.code(),
            "id": id,
            "release": release,
            "version": version,
            "section": section,
            "message": self.message(),
        });
        if let (SumProblem::Changed { recorded, current, .. }, Some(map)) = (self, v.as_object_mut()) {
            map.insert("recorded_checksum".into(), json!(recorded));
            map.insert("current_checksum".into(), json!(current));
        }
        v
    }
}

/// Compares the files with `releases/pygrate.sum`, every difference named.
pub fn check_sum(project: &Project, migrations: &[Migration]) -> Result<Vec<SumProblem>, Error> {
    let path = sum_path(project);
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![SumProblem::Missing]),
        Err(source) => return Err(Error::Io { path, source }),
    };
    Ok(check_sum_text(&text, migrations))
}

/// The sum file's `text` against the files' sections.
pub fn check_sum_text(text: &str, migrations: &[Migration]) -> Vec<SumProblem> {
    let text = if text.contains('\r') { Cow::Owned(text.replace("\r\n", "\n")) } else { Cow::Borrowed(text) };
    let mut problems = Vec::new();
    // Version id → each section's recorded checksum, borrowed from the text:
    // looked up by `&str`, one version at a time, with no key to allocate.
    let mut recorded: HashMap<&str, [Option<&str>; SectionKind::ALL.len()]> = HashMap::new();
    let mut order: Vec<(&str, SectionKind)> = Vec::new();
    let mut body_end = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let start = offset;
        offset += line.len();
        let line = line.trim_end_matches('\n');
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.rsplitn(3, ' ');
        let (checksum, section, id) = (parts.next(), parts.next(), parts.next());
        match (id, section.map(|s| (s, SectionKind::from_name(s))), checksum) {
            (None, Some((TOTAL, _)), Some(total)) => {
                if body_end.is_some() {
                    problems.push(SumProblem::Corrupt { line: line_no, reason: "a second `total` line".into() });
                }
                body_end = Some((start, total, line_no));
            }
            (Some(id), Some((section, Some(kind))), Some(checksum)) if is_hex64(checksum) => {
                if body_end.is_some() {
                    problems
                        .push(SumProblem::Corrupt { line: line_no, reason: "a line after the `total` line".into() });
                }
                let slot = &mut recorded.entry(id).or_default()[kind.index()];
                if slot.replace(checksum).is_some() {
                    problems
                        .push(SumProblem::Corrupt { line: line_no, reason: format!("`{id} {section}` appears twice") });
                }
                order.push((id, kind));
            }
            _ => problems.push(SumProblem::Corrupt {
                line: line_no,
                reason: format!("not `RELEASE/VERSION SECTION CHECKSUM`: `{line}`"),
            }),
        }
    }
    match &body_end {
        None => problems.push(SumProblem::Corrupt {
            line: text.lines().count().max(1),
            reason: "no `total` line at the end".into(),
        }),
        Some((end, total, line_no)) => {
            if sha256_hex(text.as_bytes().get(..*end).unwrap_or_default()) != *total {
                problems.push(SumProblem::Corrupt {
                    line: *line_no,
                    reason: "the `total` does not match the lines above it".into(),
                });
            }
        }
    }
    let mut id = String::new();
    for m in migrations {
        id.clear();
        let _ = write!(id, "{}", m.id);
        let mut sums = recorded.get_mut(id.as_str());
        for kind in SectionKind::ALL {
            let sum = sums.as_mut().and_then(|s| s[kind.index()].take());
            match (m.section(kind), sum) {
                (Some(section), Some(sum)) if section.checksum != sum => problems.push(SumProblem::Changed {
                    id: id.clone(),
                    section: kind.name().to_string(),
                    recorded: sum.to_string(),
                    current: section.checksum.clone(),
                }),
                (Some(_), None) => {
                    problems.push(SumProblem::Unrecorded { id: id.clone(), section: kind.name().to_string() })
                }
                (None, Some(_)) => {
                    problems.push(SumProblem::Removed { id: id.clone(), section: kind.name().to_string() })
                }
                _ => {}
            }
        }
    }
    for (id, kind) in order {
        if recorded.get_mut(id).and_then(|s| s[kind.index()].take()).is_some() {
            problems.push(SumProblem::Removed { id: id.to_string(), section: kind.name().to_string() });
        }
    }
    problems
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::parser::parse;
    use crate::project::VersionId;

    fn m(r: &str, v: &str, text: &str) -> Migration {
        parse(VersionId::new(r, v), Path::new("x.sql"), text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn sum_text_is_one_line_per_section_then_the_total() {
        let ms = [m("r1", "v1", "-- @add\nA;\n-- @rollback_add\nB;\n"), m("r1", "v2", "-- @drop\nC;\n")];
        let text = sum_text(&ms);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("r1/v1 add ")
                && lines[1].starts_with("r1/v1 rollback_add ")
                && lines[2].starts_with("r1/v2 drop ")
        );
        let body: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(lines[3], format!("total {}", sha256_hex(body.as_bytes())));
        // CRLF in the files changes nothing.
        let crlf = [m("r1", "v1", "-- @add\r\nA;\r\n-- @rollback_add\r\nB;\r\n"), m("r1", "v2", "-- @drop\r\nC;\r\n")];
        assert_eq!(sum_text(&crlf), text);
    }

    fn found(text: &str, migrations: &[Migration]) -> Vec<String> {
        check_sum_text(text, migrations).iter().map(|p| format!("{} {}", p.code(), p.change())).collect()
    }

    #[test]
    fn every_difference_is_found_in_file_order_then_sum_order() {
        let before = [
            m("r1", "v1", "-- @add\nA;\n-- @rollback_add\nB;\n"),
            m("r1", "v2", "-- @drop\nC;\n"),
            m("r1", "v3", "-- @add\nD;\n"),
        ];
        let sum = sum_text(&before);
        assert_eq!(found(&sum, &before), Vec::<String>::new());
        assert_eq!(found(&sum.replace('\n', "\r\n"), &before), Vec::<String>::new(), "CRLF");
        let after = [
            m("r1", "v1", "-- @add\nA2;\n"),
            m("r1", "v2", "-- @drop\nC;\n-- @simdrop\nS;\n"),
            m("r1", "v4", "-- @add\nE;\n"),
        ];
        assert_eq!(
            found(&sum, &after),
            [
                "sum_changed r1/v1 add: changed",
                "sum_removed r1/v1 rollback_add: removed",
                "sum_unrecorded r1/v2 simdrop: added",
                "sum_unrecorded r1/v4 add: added",
                "sum_removed r1/v3 add: removed",
            ]
        );
        let twice = sum.replacen("r1/v2 drop", "r1/v1 add", 1);
        assert!(found(&twice, &before).iter().any(|p| p.contains("`r1/v1 add` appears twice")), "{twice}");
    }
}
