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
        self.hunks
            .iter()
            .find(|h| (start..=end).all(|l| h.shows_new_line(l)))
    }
}
