//! The project model (SPEC 1): releases under `releases/`, versions inside
//! them, and the natural order that is the order of every lane.

use std::cmp::Ordering;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, FileError};

/// `RELEASE/VERSION`, the identity of a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionId {
    pub release: String,
    pub version: String,
}

impl VersionId {
    pub fn new(release: impl Into<String>, version: impl Into<String>) -> Self {
        VersionId { release: release.into(), version: version.into() }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.release, self.version)
    }
}

impl Ord for VersionId {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(&self.release, &other.release)
            .then_with(|| natural_cmp(&self.version, &other.version))
            // Natural order ties (`v1`/`v01`) are rejected at discovery; fall back
            // to bytes so the order stays total for ids that come from the state.
            .then_with(|| self.release.cmp(&other.release))
            .then_with(|| self.version.cmp(&other.version))
    }
}

impl PartialOrd for VersionId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A version file found on disk.
#[derive(Debug, Clone)]
pub struct VersionFile {
    pub id: VersionId,
    /// Path as shown to the user (project root joined, `./` dropped).
    pub path: PathBuf,
}

impl VersionFile {
    /// The file's bytes; None when it is not a regular file. Opened without
    /// blocking and checked before reading: a FIFO named `v2.sql` hung every
    /// command, and a link to `/dev/zero` filled memory.
    pub fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
        let mut options = fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let mut file = options.open(&self.path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Ok(None);
        }
        // One byte more than the size, so that the read reaching the end is
        // seen without growing the buffer; through `Take`, because `File`'s
        // own `read_to_end` asks the kernel for the size and the position
        // again (a statx and an lseek per file: a tenth of a no-op's time).
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1));
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, u64::MAX), &mut bytes)?;
        Ok(Some(bytes))
    }
}

/// Everything discovered under `releases/`, in global order.
#[derive(Debug, Default)]
pub struct Project {
    pub root: PathBuf,
    pub files: Vec<VersionFile>,
    pub warnings: Vec<String>,
}

pub const RELEASES_DIR: &str = "releases";

/// A project root has a `releases/` directory.
pub fn check_root(root: &Path) -> Result<(), Error> {
    let releases_dir = root.join(RELEASES_DIR);
    if releases_dir.is_dir() {
        return Ok(());
    }
    let problem = if releases_dir.exists() {
        format!("{} is not a directory", releases_dir.display())
    } else {
        format!("no {RELEASES_DIR}/ directory in {}", root.display())
    };
    Err(Error::Usage(format!(
        "{problem}; give the project root with -p DIR, or create the first version with `pygrate new RELEASE NAME`"
    )))
}

impl Project {
    /// Lists releases and versions. A missing `releases/` is an error: it is
    /// far more likely a mistyped `-p` than a project with nothing in it, and
    /// treating it as empty would make `ff` and `check` report success.
    pub fn discover(root: &Path) -> Result<Project, Error> {
        let mut project = Project { root: root.to_path_buf(), ..Default::default() };
        check_root(root)?;
        let releases_dir = root.join(RELEASES_DIR);
        let mut errors = Vec::new();
        let mut releases = Vec::new();
        for entry in read_dir_sorted(&releases_dir)? {
            let (name, path, is_dir) = entry;
            if name.starts_with('.') {
                continue;
            }
            if is_dir {
                releases.push((name, path));
            } else if name.ends_with(".sql") {
                project.warnings.push(format!(
                    "{}: ignored: versions live in a release directory, e.g. releases/<release>/{name}",
                    project.display(&path).display()
                ));
            }
        }
        for (name, path) in &releases {
            check_name(&project, name, path, &mut errors);
        }
        check_natural_ties(&project, releases.iter().map(|(n, p)| (n.as_str(), p.as_path())), &mut errors);
        releases.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        for (release, release_path) in &releases {
            let mut versions = Vec::new();
            for (name, path, is_dir) in read_dir_sorted(release_path)? {
                if name.starts_with('.') {
                    continue;
                }
                let shown = project.display(&path);
                if is_dir {
                    project.warnings.push(format!(
                        "{}: ignored: nested directories are not read; versions are *.sql files directly in a release",
                        shown.display()
                    ));
                } else if let Some(stem) = name.strip_suffix(".sql") {
                    if stem.is_empty() {
                        project.warnings.push(format!("{}: ignored: a version needs a name", shown.display()));
                    } else {
                        check_name(&project, stem, &path, &mut errors);
                        versions.push((stem.to_string(), path));
                    }
                } else if looks_like_sql(&name) {
                    project.warnings.push(format!(
                        "{}: ignored: only files ending in lowercase `.sql` are versions; rename it if it is one",
                        shown.display()
                    ));
                }
            }
            check_natural_ties(&project, versions.iter().map(|(n, p)| (n.as_str(), p.as_path())), &mut errors);
            versions.sort_by(|a, b| natural_cmp(&a.0, &b.0));
            for (version, path) in versions {
                let path = project.display(&path);
                project.files.push(VersionFile { id: VersionId::new(release.clone(), version), path });
            }
        }
        if errors.is_empty() {
            Ok(project)
        } else {
            Err(Error::Format(errors))
        }
    }

    /// The path as the user should see it: relative to the working directory
    /// they gave `-p` from, without a leading `./`.
    pub fn display(&self, path: &Path) -> PathBuf {
        path.strip_prefix(".").map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.root.join(RELEASES_DIR)
    }
}

fn looks_like_sql(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".sql") || lower.contains(".sql.")
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, Error> {
    let io = |e| Error::Io { path: dir.to_path_buf(), source: e };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::Usage(format!("{}: file name is not valid UTF-8; rename it", path.display())));
        };
        // The directory listing knows the type; only a symlink needs a stat,
        // so that a linked release or version behaves like a real one.
        let is_dir = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => path.is_dir(),
        };
        out.push((name, path, is_dir));
    }
    out.sort();
    Ok(out)
}

/// A release or version name is stored in the state tables and written one
/// per line in `pygrate.sum`: a control character (a newline split its
/// line) or a space at either end (MySQL's collation ignores trailing
/// spaces, so `v1 ` and `v1` shared state rows) is an error naming it.
fn check_name(project: &Project, name: &str, path: &Path, errors: &mut Vec<FileError>) {
    let problem = if name.chars().any(char::is_control) {
        "holds a control character"
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        "starts or ends with a space"
    } else {
        return;
    };
    errors.push(FileError::of_path(
        project.display(path),
        format!("the name `{}` {problem}; rename it", name.escape_debug()),
    ));
}

/// Names that compare equal in natural order (`v1`, `v01`) have no order
/// between them: an error naming both files.
fn check_natural_ties<'a>(
    project: &Project,
    names: impl Iterator<Item = (&'a str, &'a Path)>,
    errors: &mut Vec<FileError>,
) {
    let mut sorted: Vec<(&str, &Path)> = names.collect();
    sorted.sort_by(|a, b| natural_cmp(a.0, b.0).then_with(|| a.0.cmp(b.0)));
    for pair in sorted.windows(2) {
        if let [(a, pa), (b, pb)] = pair {
            if natural_cmp(a, b) == Ordering::Equal {
                errors.push(FileError::of_path(
                    project.display(pb),
                    format!(
                        "`{b}` and `{a}` ({}) sort the same in natural order; rename one so the order is unambiguous",
                        project.display(pa).display()
                    ),
                ));
            }
        }
    }
}

/// Natural order: runs of digits compare as numbers, other runs as text, so
/// `v2` < `v10` and `2026.2` < `2026.10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut ra = Runs(a);
    let mut rb = Runs(b);
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (is_digits(x), is_digits(y)) {
                    (true, true) => cmp_numeric(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn is_digits(run: &str) -> bool {
    run.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// Compares digit strings of any length as numbers, without overflow.
fn cmp_numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Splits a name into maximal runs of ASCII digits and of everything else.
struct Runs<'a>(&'a str);

impl<'a> Iterator for Runs<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let first = self.0.as_bytes().first()?;
        let digit = first.is_ascii_digit();
        let end = self.0.char_indices().find(|(_, c)| c.is_ascii_digit() != digit).map_or(self.0.len(), |(i, _)| i);
        let (run, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(run)
    }
}

/// What a TARGET argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version(VersionId),
    Release(String),
}

impl Target {
    /// Resolves `RELEASE/VERSION`, `RELEASE`, or a bare `VERSION` unique across
    /// releases, against `known` (files and versions known from the state).
    pub fn resolve<'a>(typed: &str, known: impl Iterator<Item = &'a VersionId> + Clone) -> Result<Target, Error> {
        let arg = typed.trim_end_matches(".sql").trim_end_matches('/');
        // `RELEASE/` names the release even where a version has its name.
        let said_release = typed.trim_end_matches(".sql").ends_with('/');
        let (release, version) = match arg.split_once('/') {
            Some((r, v)) => (Some(r), v),
            None if known.clone().any(|k| k.release == arg) => {
                let versions: Vec<String> = known.filter(|k| k.version == arg).map(|k| k.to_string()).collect();
                if said_release || versions.is_empty() {
                    return Ok(Target::Release(arg.to_string()));
                }
                // A rollback of the whole release where one version was meant
                // would be hard to take back.
                return Err(Error::Usage(format!(
                    "`{typed}` is ambiguous: it names release `{arg}` and version {}; write `{arg}/` for the \
                     release, or RELEASE/VERSION",
                    versions.join(", ")
                )));
            }
            None => (None, arg),
        };
        let in_release = |k: &&VersionId| release.is_none_or(|r| k.release == r);
        // An exact name wins; else a unique prefix ending at a word break, so
        // `2026.01/v002` finds `2026.01/v002-split-full-name`.
        let mut matches: Vec<&VersionId> = known.clone().filter(in_release).filter(|k| k.version == version).collect();
        if matches.is_empty() {
            matches = known
                .clone()
                .filter(in_release)
                .filter(|k| k.version.strip_prefix(version).is_some_and(|rest| rest.starts_with(['-', '_', '.'])))
                .collect();
        }
        match matches.as_slice() {
            [one] => Ok(Target::Version((*one).clone())),
            [] if release.is_some() => Err(Error::Usage(format!("no version `{typed}`{}", suggest(arg, known)))),
            [] => Err(Error::Usage(format!("no release or version `{typed}`{}", suggest(arg, known)))),
            many => Err(Error::Usage(format!(
                "`{typed}` is ambiguous: it names {}; give RELEASE/VERSION",
                many.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    pub fn contains(&self, id: &VersionId) -> bool {
        match self {
            Target::Version(v) => v == id,
            Target::Release(r) => *r == id.release,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Version(v) => v.fmt(f),
            Target::Release(r) => f.write_str(r),
        }
    }
}

fn suggest<'a>(arg: &str, known: impl Iterator<Item = &'a VersionId>) -> String {
    let best = known
        .flat_map(|k| [k.to_string(), k.version.clone(), k.release.clone()])
        .map(|c| (crate::text::edit_distance(arg, &c), c))
        .min();
    match best {
        Some((d, c)) if d <= arg.len().max(3) / 2 => format!("; did you mean `{c}`?"),
        _ => "; `pygrate status` lists the versions".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec!["v10", "v2", "v1", "2026.10", "2026.2", "a", "v1b", "v1a", "x9", "x10"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["2026.2", "2026.10", "a", "v1", "v1a", "v1b", "v2", "v10", "x9", "x10"]);
        assert_eq!(natural_cmp("v1", "v01"), Ordering::Equal);
        assert_eq!(natural_cmp("v99999999999999999999999", "v100000000000000000000000"), Ordering::Less);
        assert_eq!(natural_cmp("é2", "é10"), Ordering::Less);
    }

    fn ids() -> Vec<VersionId> {
        vec![VersionId::new("r1", "v001"), VersionId::new("r1", "v002"), VersionId::new("r2", "v001")]
    }

    #[test]
    fn targets() {
        let ids = ids();
        assert_eq!(Target::resolve("r1/v002", ids.iter()).ok(), Some(Target::Version(ids[1].clone())));
        assert_eq!(Target::resolve("v002", ids.iter()).ok(), Some(Target::Version(ids[1].clone())));
        assert_eq!(Target::resolve("r2", ids.iter()).ok(), Some(Target::Release("r2".into())));
        let named = [VersionId::new("r1", "v1-a"), VersionId::new("r1", "v10-b"), VersionId::new("r2", "v1-c")];
        assert_eq!(Target::resolve("r1/v1", named.iter()).ok(), Some(Target::Version(named[0].clone())));
        assert_eq!(Target::resolve("v10", named.iter()).ok(), Some(Target::Version(named[1].clone())));
        let err = Target::resolve("v1", named.iter()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ambiguous") && err.contains("r1/v1-a") && err.contains("r2/v1-c"), "{err}");
        let err = Target::resolve("v001", ids.iter()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ambiguous") && err.contains("r1/v001") && err.contains("r2/v001"), "{err}");
        let err = Target::resolve("r1/v003", ids.iter()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("did you mean"), "{err}");
        // A release and a version of the same name: `v1/` is the release.
        let both = [VersionId::new("r1", "v1"), VersionId::new("v1", "a"), VersionId::new("v1", "b")];
        let err = Target::resolve("v1", both.iter()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("names release `v1` and version r1/v1; write `v1/`"), "{err}");
        assert_eq!(Target::resolve("v1/", both.iter()).ok(), Some(Target::Release("v1".into())));
        assert_eq!(Target::resolve("r1/v1", both.iter()).ok(), Some(Target::Version(both[0].clone())));
        let prefix = [VersionId::new("r1", "v1-a"), VersionId::new("v1", "a")];
        assert_eq!(Target::resolve("v1", prefix.iter()).ok(), Some(Target::Release("v1".into())), "exact wins");
        // Errors show the target as typed, even when trimming leaves nothing.
        for typed in ["/", "r9/v1.sql", "nope/"] {
            let err = Target::resolve(typed, ids.iter()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(&format!("`{typed}`")), "{err}");
        }
    }
}
