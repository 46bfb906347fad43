//! What a change did to each file: status, paths, and hunks with old and new line numbers.
//! Pure data; [`crate::git`] fills it from a repository.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Copied,
    /// Only the file mode changed: no line to comment on.
    ModeOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LineKind {
    Context,
    Added,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffLine {
    pub kind: LineKind,
    pub old_line: Option<u32>,
    pub new_line: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub lines: Vec<DiffLine>,
}

impl Hunk {
    /// Whether a new-side line is shown in this hunk (added or context): a forge accepts a
    /// comment on the RIGHT side there and nowhere else.
    pub fn shows_new_line(&self, line: u32) -> bool {
        self.lines
            .iter()
            .any(|l| l.new_line == Some(line) && l.kind != LineKind::Removed)
    }

    pub fn added_lines(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .filter(|l| l.kind == LineKind::Added)
            .filter_map(|l| l.new_line)
    }

    pub fn removed_lines(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .filter(|l| l.kind == LineKind::Removed)
            .filter_map(|l| l.old_line)
    }

    /// The old-side line of a new-side context line.
    pub fn old_line_of(&self, new_line: u32) -> Option<u32> {
        self.lines
            .iter()
            .find(|l| l.new_line == Some(new_line) && l.kind == LineKind::Context)
            .and_then(|l| l.old_line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    pub kind: ChangeKind,
    /// Absent for added files.
    pub old_path: Option<String>,
    /// Absent for deleted files.
    pub new_path: Option<String>,
    pub hunks: Vec<Hunk>,
    /// Binary or too large to diff: listed, never commented on.
    pub binary: bool,
    /// Either side is a symbolic link: what it points at is not followed.
    pub symlink: bool,
}

impl FileChange {
    /// The path in the new revision, else the old one.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }

    pub fn is_added_line(&self, line: u32) -> bool {
        self.hunks
            .iter()
            .any(|h| h.added_lines().any(|l| l == line))
    }

    pub fn added_lines(&self) -> impl Iterator<Item = u32> + '_ {
        self.hunks.iter().flat_map(Hunk::added_lines)
    }

    pub fn removed_lines(&self) -> impl Iterator<Item = u32> + '_ {
        self.hunks.iter().flat_map(Hunk::removed_lines)
    }

    /// The hunk that shows this new-side line, if any.
    pub fn hunk_showing(&self, line: u32) -> Option<&Hunk> {
        self.hunks.iter().find(|h| h.shows_new_line(line))
    }

    /// Whether new-side lines `start..=end` are all shown by one hunk.
    pub fn one_hunk_shows(&self, start: u32, end: u32) -> Option<&Hunk> {
        one_hunk_shows(&self.hunks, start, end)
    }
}

/// The hunk that shows every new-side line `start..=end`, if one does: where a forge accepts
/// a comment spanning those lines.
pub fn one_hunk_shows(hunks: &[Hunk], start: u32, end: u32) -> Option<&Hunk> {
    hunks
        .iter()
        .find(|h| (start..=end).all(|l| h.shows_new_line(l)))
}

/// A unified diff that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the diff: {reason}")]
pub struct PatchError {
    pub line: usize,
    pub reason: &'static str,
}

/// The hunks of one file's unified diff: the `patch` GitHub lists for a pull request's file
/// (which starts at the first `@@`). Text before the first hunk header is skipped.
pub fn parse_unified_hunks(patch: &str) -> Result<Vec<Hunk>, PatchError> {
    let mut hunks: Vec<Hunk> = Vec::new();
    let (mut old, mut new) = (0u32, 0u32);
    for (index, text) in patch.lines().enumerate() {
        let error = |reason| PatchError {
            line: index + 1,
            reason,
        };
        if text.starts_with("@@") {
            let hunk = parse_hunk_header(text).ok_or(error("malformed hunk header"))?;
            (old, new) = (hunk.old_start, hunk.new_start);
            hunks.push(hunk);
            continue;
        }
        let Some(hunk) = hunks.last_mut() else {
            continue;
        };
        let (kind, old_line, new_line) = match text.as_bytes().first() {
            Some(b'+') => (LineKind::Added, None, Some(new)),
            Some(b'-') => (LineKind::Removed, Some(old), None),
            // Some tools drop the space of an empty context line.
            Some(b' ') | None => (LineKind::Context, Some(old), Some(new)),
            Some(b'\\') => continue, // "\ No newline at end of file"
            Some(_) => return Err(error("a diff line starts with neither ' ', '+' nor '-'")),
        };
        if old_line.is_some() {
            old += 1;
        }
        if new_line.is_some() {
            new += 1;
        }
        hunk.lines.push(DiffLine {
            kind,
            old_line,
            new_line,
        });
    }
    Ok(hunks)
}

/// `@@ -a[,b] +c[,d] @@ ...`
fn parse_hunk_header(text: &str) -> Option<Hunk> {
    let rest = text.strip_prefix("@@ -")?;
    let (ranges, _) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(u32, u32)> {
        match r.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_lines) = range(old)?;
    let (new_start, new_lines) = range(new)?;
    Some(Hunk {
        old_start,
        old_lines,
        new_start,
        new_lines,
        lines: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_hunks_number_both_sides() {
        let patch = "@@ -1,3 +1,4 @@ kind: Deployment\n a\n-b\n+B\n+C\n c\n@@ -10 +11,0 @@\n-z\n\\ No newline at end of file";
        let hunks = parse_unified_hunks(patch).expect("parses");
        assert_eq!(hunks.len(), 2);
        let first = &hunks[0];
        assert_eq!((first.new_start, first.new_lines), (1, 4));
        assert_eq!(first.added_lines().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(first.removed_lines().collect::<Vec<_>>(), [2]);
        assert!(first.shows_new_line(4) && !first.shows_new_line(5));
        assert_eq!(first.old_line_of(4), Some(3));
        assert_eq!(hunks[1].removed_lines().collect::<Vec<_>>(), [10]);
        assert!(!hunks[1].shows_new_line(11));
    }

    #[test]
    fn malformed_diffs_say_where() {
        assert_eq!(
            parse_unified_hunks("@@ -x +1 @@\n+a"),
            Err(PatchError {
                line: 1,
                reason: "malformed hunk header"
            })
        );
        assert_eq!(
            parse_unified_hunks("@@ -1 +1 @@\n*a").map_err(|e| e.line),
            Err(2)
        );
        assert_eq!(parse_unified_hunks(""), Ok(vec![]));
    }
}
