//! Events from saphyr-parser into [`Node`] trees, one document at a time.
//!
//! A stream is split at `---` lines first, so one malformed document costs only itself: the
//! others are still parsed. The tree is built from the parser's pull API (no recursion), so
//! nesting depth and alias expansion are checked as nodes arrive and a hostile file stops at its
//! first excess instead of exhausting the stack or memory.
//!
//! Limits are of two kinds. Per document: nesting depth and alias expansion, whose excess costs
//! that document only. Per file: nodes, scalar bytes and documents built, aliases counted at
//! every use. Those bound what one file can cost however its documents split the work (20,000
//! documents each just under the per-document alias limit took 5.5 GiB), so their excess stops
//! the whole file: what was built is dropped and the file is one error.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use saphyr_parser::{Event, Parser, ScalarStyle, Span as PSpan};

use super::{Entry, Mark, Node, Span, Value, scalar::resolve_typed};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes that aliases may copy into one document.
    pub max_alias_nodes: usize,
    /// Most nodes one file may build, aliases counted at every use (a mapping entry is two: key
    /// and value). The copy an anchor keeps for its aliases counts too: anchors nested in
    /// anchors are copied at every level.
    pub max_file_nodes: usize,
    /// Most bytes of scalar text (keys and values) one file may build, aliases counted at every
    /// use: an alias of a long string costs its length again.
    pub max_file_scalar_bytes: usize,
    /// Most documents one file may hold.
    pub max_file_documents: usize,
}

impl Default for Limits {
    /// The per-file defaults are several times what large real files need (prometheus-operator's
    /// 4.5 MB of CRDs builds 91,557 nodes and 2.2 MB of scalars in 10 documents, so a file of
    /// that kind at the 10 MiB size limit about 210,000 nodes; a `helm template` of a whole
    /// platform, a few thousand documents) while keeping what one file can take to about
    /// 60–75 MiB per budget (`cargo bench --bench hostile`, docs/benchmarks.md).
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_alias_nodes: 10_000,
            max_file_nodes: 1_000_000,
            max_file_scalar_bytes: 64 * 1024 * 1024,
            max_file_documents: 10_000,
        }
    }
}

/// A per-file budget of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Budget {
    Nodes,
    ScalarBytes,
    Documents,
}

impl Budget {
    /// The policy key that sets it, under `limits:`.
    pub fn config_key(self) -> &'static str {
        match self {
            Budget::Nodes => "maxFileNodes",
            Budget::ScalarBytes => "maxFileScalarBytes",
            Budget::Documents => "maxFileDocuments",
        }
    }

    fn limit(self, limits: &Limits) -> usize {
        match self {
            Budget::Nodes => limits.max_file_nodes,
            Budget::ScalarBytes => limits.max_file_scalar_bytes,
            Budget::Documents => limits.max_file_documents,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Budget::Nodes => "YAML nodes, aliases counted at every use",
            Budget::ScalarBytes => "bytes of scalar text, aliases counted at every use",
            Budget::Documents => "documents",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct ParseError {
    pub mark: Mark,
    pub message: String,
    /// The per-file budget this error is the excess of: the whole file was given up.
    pub budget: Option<Budget>,
}

/// What a file built while parsing: its cost in memory and in audit work. For a file over a
/// budget, what was built up to the excess (and then dropped), so never more than the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Weight {
    /// Nodes, aliases counted at every use and the copy each anchor keeps for them included; a
    /// mapping entry is two (key and value).
    pub nodes: usize,
    /// Bytes of scalar text, keys included, counted likewise.
    pub scalar_bytes: usize,
    /// Documents started, empty and malformed ones included.
    pub documents: usize,
}

impl std::ops::AddAssign for Weight {
    fn add_assign(&mut self, other: Weight) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.scalar_bytes = self.scalar_bytes.saturating_add(other.scalar_bytes);
        self.documents = self.documents.saturating_add(other.documents);
    }
}

/// A whole file: its documents and what they cost.
#[derive(Debug)]
pub struct ParsedFile {
    /// Every document; for a file over a budget, only that error.
    pub documents: Vec<ParsedDocument>,
    pub weight: Weight,
}

impl ParsedFile {
    /// The excess that stopped the file, if one did.
    pub fn over_budget(&self) -> Option<&ParseError> {
        match self.documents.as_slice() {
            [doc] => doc.root.as_ref().err().filter(|e| e.budget.is_some()),
            _ => None,
        }
    }
}

/// One document of a stream: its tree, or why it has none.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ParsedDocument {
    /// 0-based position of the document in its file.
    pub index: usize,
    /// The line its text starts on.
    pub start_line: u32,
    pub root: Result<Node, ParseError>,
}

/// Parses every document of a YAML stream. Empty documents (only comments) are left out.
pub fn parse_stream(text: &str, limits: Limits) -> Vec<ParsedDocument> {
    parse_file(text, limits).documents
}

/// [`parse_stream`], with what the file cost. Over a per-file budget, parsing stops at the
/// first excess and the file is that one error: a budget is a bound on memory only if what was
/// built is dropped rather than kept for the documents that fitted.
pub fn parse_file(text: &str, limits: Limits) -> ParsedFile {
    let mut docs = Vec::new();
    // One builder for the whole stream: its scratch stacks keep their capacity from one
    // document to the next.
    let mut builder = Builder::new(limits);
    for (start_line, chunk) in split_documents(text) {
        let outcome = run_tolerant(&mut builder, chunk, start_line - 1);
        if let Err(error) = &outcome
            && error.budget.is_some()
        {
            return over_budget(docs.len(), start_line, error.clone(), builder.weight);
        }
        for root in builder.roots.drain(..) {
            docs.push(ParsedDocument {
                index: docs.len(),
                start_line: root.span.start.line,
                root: Ok(root),
            });
        }
        if let Err(error) = outcome {
            // A chunk can fail before its document starts: it is a document all the same.
            if builder.chunk_documents == 0
                && let Err(excess) = builder.charge_document(error.mark)
            {
                return over_budget(docs.len(), start_line, excess, builder.weight);
            }
            docs.push(ParsedDocument {
                index: docs.len(),
                start_line,
                root: Err(error),
            });
        }
    }
    ParsedFile {
        documents: docs,
        weight: builder.weight,
    }
}

/// Most re-indentations tried on one document.
const MAX_REPAIRS: usize = 32;

/// Runs the builder on a chunk, accepting what Kubernetes' YAML decoder (go-yaml, after
/// libyaml) accepts and saphyr does not: a flow collection whose closing bracket sits at its
/// parent key's indent, and a quoted scalar continued at a lower indent. Both are indentation
/// that carries no meaning there, so the offending lines are re-indented and the chunk parsed
/// again; if that does not help, the original error stands.
fn run_tolerant(builder: &mut Builder, chunk: &str, line_offset: u32) -> Result<(), ParseError> {
    // What the file had built before this chunk: a retry starts from there.
    let (weight, kept) = (builder.weight, builder.kept);
    let first = builder.run(chunk, line_offset);
    let Err(error) = &first else { return first };
    if error.budget.is_some() {
        return first;
    }
    let Some(mut repaired) = reindent(chunk, error, line_offset) else {
        return first;
    };
    let original = error.clone();
    for _ in 0..MAX_REPAIRS {
        builder.weight = weight;
        builder.kept = kept;
        builder.roots.clear();
        match builder.run(&repaired, line_offset) {
            Ok(()) => return Ok(()),
            Err(e) if e.budget.is_some() => return Err(e),
            Err(e) => match reindent(&repaired, &e, line_offset) {
                Some(next) => repaired = next,
                None => break,
            },
        }
    }
    // Not a case we accept: the document's own error, from its own text.
    builder.weight = weight;
    builder.kept = kept;
    builder.roots.clear();
    match builder.run(chunk, line_offset) {
        Ok(()) => Err(original),
        Err(e) => Err(e),
    }
}

/// The chunk with the lines `error` complains about re-indented, when it is one of the cases
/// [`run_tolerant`] accepts.
fn reindent(text: &str, error: &ParseError, line_offset: u32) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let at = usize::try_from(error.mark.line.checked_sub(line_offset + 1)?).ok()?;
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    match error.message.as_str() {
        "invalid indentation" => {
            let line = lines.get(at)?;
            if !matches!(line.trim_start().chars().next(), Some(']' | '}')) {
                return None;
            }
            // As deep as the collection's previous line: inside the flow, as go-yaml reads it.
            let previous = lines[..at].iter().rev().find(|l| !l.trim().is_empty())?;
            let wanted = indent(previous);
            if wanted <= indent(line) {
                return None;
            }
            lines[at] = format!("{}{}", " ".repeat(wanted - indent(line)), line.trim_start());
        }
        "invalid indentation in quoted scalar" => {
            // The scalar starts on the error's line: its continuation lines must be indented
            // deeper than that line's key.
            let key_line = lines.get(at)?;
            let wanted = indent(key_line) + 1;
            let start = key_line.find(['"', '\''])?;
            let quote = key_line.as_bytes()[start];
            let mut closed = closes(&key_line[start + 1..], quote);
            let mut changed = false;
            let mut i = at + 1;
            while !closed && i < lines.len() {
                let line = &lines[i];
                if !line.trim().is_empty() && indent(line) < wanted {
                    lines[i] = format!("{}{}", " ".repeat(wanted - indent(line)), line);
                    changed = true;
                }
                closed = closes(&lines[i], quote);
                i += 1;
            }
            if !changed {
                return None;
            }
        }
        _ => return None,
    }
    Some(lines.join("\n"))
}

/// Whether `text` holds the closing `quote` of a scalar (escapes: `\"` in double quotes, `''`
/// in single ones).
fn closes(text: &str, quote: u8) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return true,
            _ => i += 1,
        }
    }
    false
}

fn over_budget(index: usize, start_line: u32, error: ParseError, weight: Weight) -> ParsedFile {
    ParsedFile {
        documents: vec![ParsedDocument {
            index,
            start_line,
            root: Err(error),
        }],
        weight,
    }
}

/// Splits at document-start lines. YAML forbids `---` at column 0 inside any content, block
/// scalars included, so a line split is exact. Directives stay with the document they precede.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut chunks = Vec::new();
    let mut chunk_start = 0usize;
    let mut chunk_line = 1u32;
    let is_doc_start = |line: &str| {
        line.starts_with("---")
            && matches!(
                line.as_bytes().get(3),
                None | Some(b' ' | b'\t' | b'\n' | b'\r')
            )
    };
    // Until the first chunk has content, a `---` line joins it rather than starting a new one,
    // so leading comments, blank lines and directives stay with the first document: those
    // lines are inspected one by one.
    let mut offset = 0usize;
    let mut line_no = 1u32;
    let mut has_content = false;
    while offset < text.len() && !has_content {
        let line_end = text[offset..]
            .find('\n')
            .map_or(text.len(), |i| offset + i + 1);
        let line = &text[offset..line_end];
        let trimmed = line.trim();
        has_content = is_doc_start(line)
            || !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'));
        offset = line_end;
        line_no += 1;
    }
    // From then on every chunk has content (later ones from their `---` line), so every
    // document-start line splits, and only lines starting with `---` need a look: found by a
    // substring search, with the lines in between counted rather than visited.
    let bytes = text.as_bytes();
    let mut counted = offset;
    let mut from = offset;
    loop {
        let at_line_start = from == 0 || bytes.get(from.wrapping_sub(1)) == Some(&b'\n');
        let next = if at_line_start && text[from..].starts_with("---") {
            Some(from)
        } else {
            text[from..].find("\n---").map(|i| from + i + 1)
        };
        let Some(at) = next else { break };
        let newlines = bytes[counted..at].iter().filter(|&&b| b == b'\n').count();
        line_no += u32::try_from(newlines).unwrap_or(u32::MAX);
        counted = at;
        if is_doc_start(&text[at..]) {
            chunks.push((chunk_line, &text[chunk_start..at]));
            chunk_start = at;
            chunk_line = line_no;
        }
        from = at + 3;
    }
    if chunk_start < text.len() {
        chunks.push((chunk_line, &text[chunk_start..]));
    }
    chunks
}

/// An open collection. Its children live on the builder's scratch stacks from index `first`;
/// `before` is the file's weight and the anchors' copies before it, so its own cost is known
/// when it ends.
enum Frame {
    Seq {
        first: usize,
        start: Mark,
        anchor: usize,
        before: (Weight, Cost),
    },
    Map {
        first: usize,
        seen: Option<HashSet<CompactString>>,
        pending_key: Option<(CompactString, Span)>,
        start: Mark,
        anchor: usize,
        merges: Vec<Node>,
        before: (Weight, Cost),
    },
}

/// What an anchored node weighs, so an alias can be charged before it is copied.
#[derive(Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    scalar_bytes: usize,
}

impl Cost {
    fn scalar(text: &str) -> Cost {
        Cost {
            nodes: 1,
            scalar_bytes: text.len(),
        }
    }

    /// What was built between two (weight, anchor copies) points, anchor copies left out.
    fn since(before: (Weight, Cost), now: (Weight, Cost)) -> Cost {
        let built = |w: Weight, kept: Cost| Cost {
            nodes: w.nodes - kept.nodes,
            scalar_bytes: w.scalar_bytes - kept.scalar_bytes,
        };
        let (from, to) = (built(before.0, before.1), built(now.0, now.1));
        Cost {
            nodes: to.nodes - from.nodes,
            scalar_bytes: to.scalar_bytes - from.scalar_bytes,
        }
    }
}

struct Builder {
    limits: Limits,
    line_offset: u32,
    stack: Vec<Frame>,
    /// Items of the open sequences, innermost last. A sequence moves its own out when it ends,
    /// so each gets one allocation of its exact size rather than a `Vec` grown by doubling.
    items: Vec<Node>,
    /// Entries of the open mappings, innermost last, likewise.
    entries: Vec<Entry>,
    anchors: HashMap<usize, (Node, Cost)>,
    /// Nodes that aliases copied into the current document.
    alias_nodes: usize,
    roots: Vec<Node>,
    /// What the file has built so far, across chunks.
    weight: Weight,
    /// The part of `weight` that is the copies anchors keep for their aliases.
    kept: Cost,
    /// Documents started in the current chunk.
    chunk_documents: usize,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            line_offset: 0,
            stack: Vec::new(),
            items: Vec::new(),
            entries: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            roots: Vec::new(),
            weight: Weight::default(),
            kept: Cost::default(),
            chunk_documents: 0,
        }
    }

    /// Counts a node about to be built against the file's budgets. Checked before adding, so
    /// the weight never passes a budget and nothing is built past one.
    fn charge(&mut self, cost: Cost, at: Mark) -> Result<(), ParseError> {
        let nodes = self.weight.nodes.saturating_add(cost.nodes);
        if nodes > self.limits.max_file_nodes {
            return Err(self.over(Budget::Nodes, at));
        }
        let bytes = self.weight.scalar_bytes.saturating_add(cost.scalar_bytes);
        if bytes > self.limits.max_file_scalar_bytes {
            return Err(self.over(Budget::ScalarBytes, at));
        }
        self.weight.nodes = nodes;
        self.weight.scalar_bytes = bytes;
        Ok(())
    }

    /// Keeps the copy of an anchored node that its aliases clone. The copy is memory too, and
    /// anchors nested in anchors are copied again at every level, so it is charged like a node.
    fn keep_anchor(
        &mut self,
        anchor: usize,
        node: &Node,
        cost: Cost,
        at: Mark,
    ) -> Result<(), ParseError> {
        self.charge(cost, at)?;
        self.kept.nodes += cost.nodes;
        self.kept.scalar_bytes += cost.scalar_bytes;
        self.anchors.insert(anchor, (node.clone(), cost));
        Ok(())
    }

    fn charge_document(&mut self, at: Mark) -> Result<(), ParseError> {
        if self.weight.documents >= self.limits.max_file_documents {
            return Err(self.over(Budget::Documents, at));
        }
        self.weight.documents += 1;
        self.chunk_documents += 1;
        Ok(())
    }

    fn over(&self, budget: Budget, at: Mark) -> ParseError {
        ParseError {
            mark: at,
            message: format!(
                "file over its parse budget of {} {} (raise `limits.{}` in the policy to allow more); none of this file was audited",
                budget.limit(&self.limits),
                budget.what(),
                budget.config_key()
            ),
            budget: Some(budget),
        }
    }

    fn mark(&self, m: &saphyr_parser::Marker) -> Mark {
        Mark {
            line: m.line() as u32 + self.line_offset,
            col: m.col() as u32 + 1,
        }
    }

    fn span(&self, s: &PSpan) -> Span {
        Span {
            start: self.mark(&s.start),
            end: self.mark(&s.end),
        }
    }

    /// Parses one chunk of the stream, whose first line is line `line_offset + 1` of the file.
    /// Completed documents go to `roots`; state left by a previous chunk is dropped first.
    fn run(&mut self, chunk: &str, line_offset: u32) -> Result<(), ParseError> {
        self.line_offset = line_offset;
        self.stack.clear();
        self.items.clear();
        self.entries.clear();
        self.anchors.clear();
        self.alias_nodes = 0;
        self.chunk_documents = 0;
        let parser = Parser::new_from_str(chunk);
        for item in parser {
            let (event, pspan) = item.map_err(|e| ParseError {
                mark: self.mark(e.marker()),
                message: e.info().to_owned(),
                budget: None,
            })?;
            let span = self.span(&pspan);
            match event {
                Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    self.charge_document(span.start)?;
                    self.anchors.clear();
                    self.alias_nodes = 0;
                }
                Event::DocumentEnd => {}
                Event::Scalar(text, style, anchor, tag) => {
                    if let Some(Frame::Map {
                        pending_key: None, ..
                    }) = self.stack.last()
                    {
                        // Keys keep their text: `on:` or `y:` name a field, they are not
                        // booleans. The parser's own string becomes the key, with no copy.
                        let key = owned(text);
                        let cost = Cost::scalar(&key);
                        let node = (anchor > 0).then(|| Node::new(Value::Str(key.clone()), span));
                        // `pending_key` borrows the stack: set it after the charge.
                        self.charge(cost, span.start)?;
                        if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                            *pending_key = Some((key, span));
                        }
                        if let Some(node) = node {
                            self.keep_anchor(anchor, &node, cost, span.start)?;
                        }
                        continue;
                    }
                    let cost = Cost::scalar(&text);
                    self.charge(cost, span.start)?;
                    let node = Node::new(scalar_value(text, style, tag.as_deref()), span);
                    if anchor > 0 {
                        self.keep_anchor(anchor, &node, cost, span.start)?;
                    }
                    self.push(node)?;
                }
                Event::Alias(id) => {
                    let Some(&(_, cost)) = self.anchors.get(&id) else {
                        return Err(self.error(span.start, "alias to an unknown anchor"));
                    };
                    // The document's limit first: its excess costs that document only.
                    self.alias_nodes = self.alias_nodes.saturating_add(cost.nodes);
                    if self.alias_nodes > self.limits.max_alias_nodes {
                        return Err(self.error(
                            span.start,
                            &format!(
                                "aliases expand to more than {} nodes (possible \"billion laughs\" attack)",
                                self.limits.max_alias_nodes
                            ),
                        ));
                    }
                    self.charge(cost, span.start)?;
                    // Looked up again: the copy is made only once the charge has passed.
                    let Some((node, _)) = self.anchors.get(&id) else {
                        return Err(self.error(span.start, "alias to an unknown anchor"));
                    };
                    let mut node = node.clone();
                    // The alias site is where a reader looks; children keep the anchor's places.
                    node.span = span;
                    self.push(node)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.enter(span.start)?;
                    let before = (self.weight, self.kept);
                    self.charge(Cost::scalar(""), span.start)?;
                    self.stack.push(Frame::Seq {
                        first: self.items.len(),
                        start: span.start,
                        anchor,
                        before,
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.enter(span.start)?;
                    let before = (self.weight, self.kept);
                    self.charge(Cost::scalar(""), span.start)?;
                    self.stack.push(Frame::Map {
                        first: self.entries.len(),
                        seen: None,
                        pending_key: None,
                        start: span.start,
                        anchor,
                        merges: Vec::new(),
                        before,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let frame = self
                        .stack
                        .pop()
                        .ok_or_else(|| self.error(span.start, "unbalanced end of collection"))?;
                    let end = span.end;
                    // `drain(..).collect()` allocates exactly the children's count and leaves
                    // the scratch stack its capacity (`split_off(0)` would take the buffer).
                    let (node, anchor, before) = match frame {
                        Frame::Seq {
                            first,
                            start,
                            anchor,
                            before,
                        } => {
                            let items = self.items.drain(first..).collect();
                            let node = Node::new(Value::Seq(items), Span { start, end });
                            (node, anchor, before)
                        }
                        Frame::Map {
                            first,
                            start,
                            anchor,
                            merges,
                            before,
                            ..
                        } => {
                            let mut entries = self.entries.drain(first..).collect();
                            apply_merges(&mut entries, merges);
                            let node = Node::new(Value::Map(entries), Span { start, end });
                            (node, anchor, before)
                        }
                    };
                    if anchor > 0 {
                        // Only an anchored node's cost matters: it is what an alias copies.
                        // What the file built since the collection opened, less the copies
                        // anchors inside it keep, is that cost (merge keys a mapping overrides
                        // included: an over-count, never an under-count).
                        let cost = Cost::since(before, (self.weight, self.kept));
                        self.keep_anchor(anchor, &node, cost, span.start)?;
                    }
                    self.push(node)?;
                }
            }
        }
        Ok(())
    }

    fn enter(&self, at: Mark) -> Result<(), ParseError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.error(
                at,
                &format!("nesting deeper than {} levels", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    fn error(&self, mark: Mark, message: &str) -> ParseError {
        ParseError {
            mark,
            message: message.to_owned(),
            budget: None,
        }
    }

    fn push(&mut self, node: Node) -> Result<(), ParseError> {
        let Some(frame) = self.stack.last_mut() else {
            self.roots.push(node);
            return Ok(());
        };
        match frame {
            Frame::Seq { .. } => self.items.push(node),
            Frame::Map {
                first,
                seen,
                pending_key,
                merges,
                ..
            } => match pending_key.take() {
                None => {
                    // Scalar keys never get here (see `run`): this is an alias or a collection.
                    let key = match node.value {
                        Value::Str(s) => s,
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(ParseError {
                                mark: node.span.start,
                                message: "complex mapping keys are not supported".to_owned(),
                                budget: None,
                            });
                        }
                        _ => node.scalar_text().unwrap_or_default().into(),
                    };
                    *pending_key = Some((key, node.span));
                }
                Some((key, key_span)) => {
                    if key == "<<" {
                        merges.push(node);
                        return Ok(());
                    }
                    let siblings = &self.entries[*first..];
                    let duplicate = if siblings.len() < 16 {
                        siblings.iter().any(|e| e.key == key)
                    } else {
                        let set = seen.get_or_insert_with(|| {
                            siblings.iter().map(|e| e.key.clone()).collect()
                        });
                        !set.insert(key.clone())
                    };
                    if duplicate {
                        return Err(ParseError {
                            mark: key_span.start,
                            message: format!(
                                "duplicate key `{key}`: kubectl refuses a mapping with a key twice, so this document cannot be applied"
                            ),
                            budget: None,
                        });
                    }
                    self.entries.push(Entry {
                        key,
                        key_span,
                        value: node,
                    });
                }
            },
        }
        Ok(())
    }
}

/// YAML 1.1 merge keys (`<<: *defaults`), which go-yaml honours: keys written in the mapping win.
fn apply_merges(entries: &mut Vec<Entry>, merges: Vec<Node>) {
    for merge in merges {
        let sources: Vec<Node> = match merge.value {
            Value::Map(_) => vec![merge],
            Value::Seq(items) => items,
            _ => continue,
        };
        for source in sources {
            if let Value::Map(source_entries) = source.value {
                for entry in source_entries {
                    if !entries.iter().any(|e| e.key == entry.key) {
                        entries.push(entry);
                    }
                }
            }
        }
    }
}

/// The longest text a `CompactString` holds inline: its own size.
const INLINE: usize = std::mem::size_of::<CompactString>();

/// The parser's string for a scalar, inline when it is short (most keys and values of a
/// manifest). The scanner reserves far more than most scalars need (the corpus's trees held
/// 87 MB of string capacity for 12 MB of YAML), so an over-sized long string is copied to one
/// of its length, while `shrink_to_fit` (a realloc each) measured slower than the copy.
fn owned(text: Cow<'_, str>) -> CompactString {
    match text {
        // Short text is stored inline; long text keeps the parser's buffer unless it is
        // mostly spare room.
        Cow::Owned(s) if s.len() > INLINE && s.capacity() <= 2 * s.len() => CompactString::from(s),
        text => CompactString::new(&*text),
    }
}

/// The value of a scalar that is not a mapping key.
fn scalar_value(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&saphyr_parser::Tag>) -> Value {
    if let Some(tag) = tag
        && tag.handle == "tag:yaml.org,2002:"
    {
        return match tag.suffix.as_str() {
            "null" => Value::Null,
            "bool" | "int" | "float" => {
                resolve_typed(&text).unwrap_or_else(|| Value::Str(owned(text)))
            }
            _ => Value::Str(owned(text)),
        };
    }
    match style {
        ScalarStyle::Plain if tag.is_none() => {
            resolve_typed(&text).unwrap_or_else(|| Value::Str(owned(text)))
        }
        _ => Value::Str(owned(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<ParsedDocument> {
        parse_stream(text, Limits::default())
    }

    /// What Kubernetes' decoder (go-yaml) accepts is accepted: a flow list closed at its key's
    /// indent, a quoted scalar continued below its key's indent. Real indentation errors stay.
    #[test]
    fn indentation_that_go_yaml_accepts_is_accepted() {
        let docs = parse("spec:\n  args: [\n    a,\n    b\n]\n  next: 1\n");
        let root = docs[0].root.as_ref().expect("parses");
        let args = root
            .get_path(&["spec", "args"])
            .and_then(Node::as_seq)
            .expect("args");
        assert_eq!(args.len(), 2);
        assert_eq!(
            root.get_path(&["spec", "next"]).and_then(Node::as_i64),
            Some(1)
        );
        let docs = parse("data:\n  e: \"long text\ncontinued at zero\"\n  f: x\n");
        let root = docs[0].root.as_ref().expect("parses");
        assert_eq!(
            root.get_path(&["data", "e"]).and_then(Node::as_str),
            Some("long text continued at zero")
        );
        assert_eq!(
            root.get_path(&["data", "f"]).and_then(Node::as_str),
            Some("x")
        );
        assert!(
            parse("a:\n  b: 1\n c: 2\n")[0].root.is_err(),
            "a real indentation error"
        );
        let error = parse("a: 1\na: 2\n")[0]
            .root
            .clone()
            .expect_err("duplicate");
        assert!(
            error.message.contains("kubectl refuses"),
            "{}",
            error.message
        );
    }

    #[test]
    fn every_key_and_value_has_its_line_and_column() {
        let docs = parse("a: 1\nb:\n  c: [x, y]\n---\n# comment\nd: true\n");
        assert_eq!(docs.len(), 2);
        let first = docs[0].root.as_ref().expect("first document parses");
        let b = first.entry("b").expect("key b");
        assert_eq!(b.key_span.start, Mark { line: 2, col: 1 });
        let c = b.value.entry("c").expect("key c");
        assert_eq!(c.key_span.start, Mark { line: 3, col: 3 });
        let y = &c.value.as_seq().expect("c is a sequence")[1];
        assert_eq!(y.span.start, Mark { line: 3, col: 10 });
        let second = docs[1].root.as_ref().expect("second document parses");
        assert_eq!(second.entry("d").map(|e| e.key_span.start.line), Some(6));
        assert_eq!(second.get("d").and_then(Node::as_bool), Some(true));
    }

    #[test]
    fn a_malformed_document_does_not_hide_the_others() {
        let docs = parse("a: 1\n---\nb: [unclosed\nc: 2\n---\nd: 4\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[0].root.is_ok());
        let error = docs[1]
            .root
            .as_ref()
            .expect_err("second document is malformed");
        assert!(error.mark.line >= 3, "error at line {}", error.mark.line);
        assert_eq!(
            docs[2]
                .root
                .as_ref()
                .ok()
                .and_then(|n| n.get("d"))
                .and_then(Node::as_i64),
            Some(4)
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys_resolve() {
        let docs = parse("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n");
        let root = docs[0].root.as_ref().expect("parses");
        assert_eq!(root.get_path(&["use", "x"]).and_then(Node::as_i64), Some(1));
        assert_eq!(
            root.get_path(&["merged", "x"]).and_then(Node::as_i64),
            Some(1)
        );
        assert_eq!(
            root.get_path(&["merged", "y"]).and_then(Node::as_i64),
            Some(3)
        );
    }

    #[test]
    fn billion_laughs_stops_quickly_with_a_clear_error() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let started = std::time::Instant::now();
        let docs = parse(&text);
        assert!(started.elapsed().as_millis() < 500);
        let error = docs[0].root.as_ref().expect_err("bomb is refused");
        assert!(
            error.message.contains("billion laughs"),
            "{}",
            error.message
        );
    }

    fn small(nodes: usize, scalar_bytes: usize, documents: usize) -> Limits {
        Limits {
            max_file_nodes: nodes,
            max_file_scalar_bytes: scalar_bytes,
            max_file_documents: documents,
            ..Limits::default()
        }
    }

    /// The hostile alias file in miniature: every document under the per-document alias limit, the
    /// file as a whole far over its node budget.
    fn alias_heavy(documents: usize) -> String {
        let doc = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        format!("---\n{doc}").repeat(documents)
    }

    #[test]
    fn weight_counts_what_was_built_aliases_at_every_use() {
        let file = parse_file(
            "# a comment\na: 1\nb: [x, y]\n---\nc: &a {d: e}\nf: *a\n",
            Limits::default(),
        );
        assert_eq!(file.documents.len(), 2);
        assert!(file.over_budget().is_none());
        // {a: 1, b: [x, y]}: the mapping, two keys, 1, the sequence and its two items: 7.
        // {c: {d: e}, f: *a}: the mapping, c, {d: e} (3), the anchor's copy of it (3), f, and
        // the alias's copy (3): 12.
        assert_eq!(
            file.weight,
            Weight {
                nodes: 19,
                scalar_bytes: "a1bxy".len() + "cdedefde".len(),
                documents: 2
            }
        );
    }

    #[test]
    fn a_file_over_its_node_budget_is_one_error_and_keeps_nothing() {
        let text = alias_heavy(50);
        let one = parse_file(&alias_heavy(1), small(1_000, usize::MAX, usize::MAX));
        assert!(one.over_budget().is_none(), "one document fits");
        // Every document is far under the per-document alias limit on its own.
        assert!(one.weight.nodes > 600 && one.weight.nodes < Limits::default().max_alias_nodes);

        let file = parse_file(&text, small(1_000, usize::MAX, usize::MAX));
        assert_eq!(file.documents.len(), 1, "what was built is dropped");
        let error = file.over_budget().expect("over the node budget");
        assert_eq!(error.budget, Some(Budget::Nodes));
        assert!(
            error.message.contains("parse budget of 1000 YAML nodes")
                && error.message.contains("`limits.maxFileNodes`"),
            "{}",
            error.message
        );
        // Stopped at the first excess, the sixth `*a` of the second document's `b`.
        assert_eq!(error.mark, Mark { line: 7, col: 28 }, "{error:?}");
        assert!(file.weight.nodes <= 1_000, "{:?}", file.weight);
        assert_eq!(file.weight.documents, 2);
        // parse_stream, which most callers use, gives the same single error.
        let docs = parse_stream(&text, small(1_000, usize::MAX, usize::MAX));
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].root.as_ref().err(), Some(error));
    }

    #[test]
    fn an_alias_over_both_limits_costs_its_document_only() {
        let items = (0..30)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("a: &a [{items}]\nb: *a\n---\nc: 1\n");
        let limits = Limits {
            max_alias_nodes: 20,
            ..small(80, usize::MAX, usize::MAX)
        };
        let file = parse_file(&text, limits);
        assert!(file.over_budget().is_none());
        assert_eq!(file.documents.len(), 2);
        let error = file.documents[0].root.as_ref().expect_err("alias limit");
        assert!(error.message.contains("billion laughs"), "{error:?}");
        assert!(file.documents[1].root.is_ok());
    }

    #[test]
    fn anchors_nested_in_anchors_are_charged_for_every_copy_they_keep() {
        // No alias at all: 40 anchored levels around a 100-node list. Each level's anchor
        // keeps a copy of everything inside it, 40 copies of the list in all.
        let mut text = String::new();
        for level in 0..40 {
            text.push_str(&format!("{}- &l{level}\n", "  ".repeat(level)));
        }
        let items = vec!["x"; 99].join(", ");
        text.push_str(&format!("{}- [{items}]\n", "  ".repeat(40)));
        let file = parse_file(&text, Limits::default());
        assert!(
            file.documents[0].root.is_ok(),
            "{:?}",
            file.documents[0].root
        );
        assert!(file.weight.nodes > 40 * 100, "{:?}", file.weight);
        let file = parse_file(&text, small(2_000, usize::MAX, usize::MAX));
        assert_eq!(
            file.over_budget().map(|e| e.budget),
            Some(Some(Budget::Nodes))
        );
    }

    #[test]
    fn an_alias_of_a_long_string_costs_its_bytes_at_every_use() {
        let long = "x".repeat(1_000);
        let text = format!("s: &s {long}\nl: [{}]\n", vec!["*s"; 20].join(", "));
        let file = parse_file(&text, small(usize::MAX, 10_000, usize::MAX));
        let error = file.over_budget().expect("over the scalar budget");
        assert_eq!(error.budget, Some(Budget::ScalarBytes));
        assert!(
            error.message.contains("10000 bytes of scalar text")
                && error.message.contains("`limits.maxFileScalarBytes`"),
            "{}",
            error.message
        );
        assert!(file.weight.scalar_bytes <= 10_000);
        let fits = parse_file(&text, small(usize::MAX, 30_000, usize::MAX));
        assert!(fits.over_budget().is_none());
        // The string, its anchor's copy and 20 aliases.
        assert_eq!(fits.weight.scalar_bytes, "sl".len() + 22 * 1_000);
    }

    #[test]
    fn documents_are_counted_malformed_ones_included() {
        let text = "---\na: 1\n---\nb: [\n".repeat(5);
        let at_limit = parse_file(&text, small(usize::MAX, usize::MAX, 10));
        assert!(at_limit.over_budget().is_none());
        assert_eq!(at_limit.documents.len(), 10);
        assert_eq!(at_limit.weight.documents, 10);
        let over = parse_file(&text, small(usize::MAX, usize::MAX, 9));
        let error = over.over_budget().expect("over the document budget");
        assert_eq!(error.budget, Some(Budget::Documents));
        assert!(
            error.message.contains("parse budget of 9 documents")
                && error.message.contains("`limits.maxFileDocuments`"),
            "{}",
            error.message
        );
        assert_eq!(error.mark.line, 19, "the tenth document's start");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let text = "[".repeat(100_000);
        let docs = parse(&text);
        let error = docs[0].root.as_ref().expect_err("too deep");
        // Flow collections hit the scanner's own limit, block ones ours.
        assert!(
            error.message.contains("recursion limit"),
            "{}",
            error.message
        );
        let mut block = String::new();
        for depth in 0..500 {
            block.push_str(&" ".repeat(depth));
            block.push_str("k:\n");
        }
        let docs = parse(&block);
        let error = docs[0].root.as_ref().expect_err("too deep");
        assert!(
            error.message.contains("nesting deeper"),
            "{}",
            error.message
        );
    }

    #[test]
    fn duplicate_keys_are_errors_as_in_kubectl_strict_validation() {
        let docs = parse("a: 1\nb: 2\na: 3\n");
        let error = docs[0].root.as_ref().expect_err("duplicate key");
        assert_eq!(error.mark.line, 3);
    }

    #[test]
    fn quoted_and_tagged_scalars_stay_strings() {
        let docs = parse("a: \"0644\"\nb: 0644\nc: !!str yes\nd: 'on'\ne: on\n");
        let root = docs[0].root.as_ref().expect("parses");
        assert_eq!(root.get("a").and_then(Node::as_str), Some("0644"));
        assert_eq!(root.get("b").and_then(Node::as_i64), Some(420));
        assert_eq!(root.get("c").and_then(Node::as_str), Some("yes"));
        assert_eq!(root.get("d").and_then(Node::as_str), Some("on"));
        assert_eq!(root.get("e").and_then(Node::as_bool), Some(true));
    }

    /// The plain line-by-line statement of `split_documents`, which skips most lines.
    fn split_line_by_line(text: &str) -> Vec<(u32, &str)> {
        let mut chunks = Vec::new();
        let (mut chunk_start, mut chunk_line, mut has_content, mut offset) = (0, 1, false, 0);
        for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
            let is_doc_start = line.starts_with("---")
                && matches!(
                    line.as_bytes().get(3),
                    None | Some(b' ' | b'\t' | b'\n' | b'\r')
                );
            if is_doc_start && has_content {
                chunks.push((chunk_line, &text[chunk_start..offset]));
                (chunk_start, chunk_line, has_content) = (offset, line_no, false);
            }
            let trimmed = line.trim();
            if is_doc_start
                || !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'))
            {
                has_content = true;
            }
            offset += line.len();
        }
        if chunk_start < text.len() {
            chunks.push((chunk_line, &text[chunk_start..]));
        }
        chunks
    }

    #[test]
    fn split_agrees_with_the_line_by_line_rule() {
        for text in [
            "",
            "\n\n",
            "# only a comment\n",
            "---",
            "---\n",
            "a: 1",
            "a: 1\n---\nb: 2\n",
            "---\na: 1\n---\nb: 2",
            "# head\n\n%YAML 1.2\n---\na: 1\n--- # c\n---\n\n---\t\nz\n",
            "---\n---\n---\n",
            "a: |\n  ---x\n  ----\n----\n---x\n--- \nb\r\n---\r\nc\n",
            "  ---\n# c\n---\na\n",
            "\u{a0}\n---\na\n---",
            "x\n---",
        ] {
            assert_eq!(split_documents(text), split_line_by_line(text), "{text:?}");
        }
    }

    #[test]
    fn split_keeps_directives_with_their_document() {
        let chunks = split_documents("# head\n---\na: 1\n--- \nb: 2\n...\n");
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].0, 1);
        assert_eq!(chunks[1].0, 4);
    }
}
