//! Source files and positions: the [`SourceMap`] owns the text of every file the loader read,
//! and a [`Span`] points into one of them by 1-based line and column.
//!
//! This module does no I/O: callers read files and hand their text over.

use std::fmt;

/// Identifies one file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

impl FileId {
    /// The id of values that come from no file (CLI variables, defaults).
    pub const SYNTHETIC: FileId = FileId(u32::MAX);
}

/// A 1-based position; `column` counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }
}

/// A range in one file. `end` is exclusive (the position just after the last character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub const fn new(file: FileId, start: Pos, end: Pos) -> Self {
        Span { file, start, end }
    }

    /// A span for a value that did not come from a file (e.g. `--var` on the command line).
    pub const fn synthetic() -> Self {
        Span {
            file: FileId::SYNTHETIC,
            start: Pos::new(0, 0),
            end: Pos::new(0, 0),
        }
    }

    pub fn is_synthetic(&self) -> bool {
        self.file == FileId::SYNTHETIC
    }
}

/// One file: the path as the user should see it, and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: String,
    text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(path: String, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text of 1-based `line` without its line ending, if the file has that line.
    pub fn line(&self, line: u32) -> Option<&str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(index)?;
        let end = self
            .line_starts
            .get(index + 1)
            .copied()
            .unwrap_or(self.text.len());
        let text = self.text.get(start..end)?;
        Some(text.trim_end_matches(['\n', '\r']))
    }

    /// The 1-based position of a byte offset (clamped to the end of the text).
    pub fn pos_of_byte(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let index = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(index).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        Pos::new(to_u32(index + 1), to_u32(column + 1))
    }

    /// The byte offset of a 1-based position, if it lies in the file.
    pub fn byte_of_pos(&self, pos: Pos) -> Option<usize> {
        let index = usize::try_from(pos.line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(index)?;
        let column = usize::try_from(pos.column).ok()?.checked_sub(1)?;
        let rest = self.text.get(start..)?;
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None => Some(self.text.len()),
        }
    }

    /// The text a span covers in this file, if its positions are valid.
    pub fn slice(&self, span: Span) -> Option<&str> {
        let start = self.byte_of_pos(span.start)?;
        let end = self.byte_of_pos(span.end)?;
        self.text.get(start..end.max(start))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every file read during one load, addressed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Adds a file; `path` is the display path (`.gitlab-ci.yml`, `ci/build.yml`, a URL).
    pub fn add(&mut self, path: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(to_u32(self.files.len()));
        self.files.push(SourceFile::new(path.into(), text.into()));
        id
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(usize::try_from(id.0).ok()?)
    }

    /// The display path of a file; `<command line>` for synthetic spans.
    pub fn path(&self, id: FileId) -> &str {
        self.file(id).map_or("<command line>", SourceFile::path)
    }

    pub fn text(&self, id: FileId) -> &str {
        self.file(id).map_or("", SourceFile::text)
    }

    /// Finds a file already added under this display path.
    pub fn find(&self, path: &str) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(to_u32(i)))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `path:line:column` of a span's start, as diagnostics print it.
    pub fn location(&self, span: Span) -> String {
        if span.is_synthetic() {
            return self.path(span.file).to_owned();
        }
        format!(
            "{}:{}:{}",
            self.path(span.file),
            span.start.line,
            span.start.column
        )
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::{Pos, SourceMap};

    #[test]
    fn positions_count_characters_not_bytes() {
        let mut map = SourceMap::new();
        let id = map.add("a.yml", "a: 1\nké: vä\n");
        let file = map.file(id).expect("just added");
        assert_eq!(file.pos_of_byte(0), Pos::new(1, 1));
        let v = "a: 1\nké: ".len();
        assert_eq!(file.pos_of_byte(v), Pos::new(2, 5));
        assert_eq!(file.byte_of_pos(Pos::new(2, 5)), Some(v));
        assert_eq!(file.line(2), Some("ké: vä"));
        assert_eq!(file.line(3), Some(""));
        assert_eq!(file.line(4), None);
    }
}
