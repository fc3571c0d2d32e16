//! Rewriting the items of SealedSecrets in a file in place (`seal merge`, `seal reencrypt`):
//! only the lines of the items that change are touched; comments, key order, quoting and every
//! other field keep their bytes, so a Git diff shows the items and nothing else.
//!
//! Why splice rather than serialise: a serialiser sees only the data, so it drops comments and
//! re-quotes everything. The file is parsed into a tree of nodes that remember their byte spans
//! (granit-parser, the event parser serde-saphyr re-exports, which reads JSON too: JSON is YAML
//! flow); each `encryptedData` and `recipients` mapping is rebuilt from its entries' own text
//! plus the new entries, written in their siblings' style, and spliced back. The result is
//! parsed again and compared with what was intended: a splice that went wrong is an error,
//! never a file.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

use crate::crd::SealedSecretSpec;
use crate::manifest::{Document, is_json, parse_document, split_documents};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    /// The file holds YAML this rewriter does not edit (an alias, a block scalar, a missing map).
    #[error(
        "{what}: cannot be changed in place (write the items as a mapping of plain or quoted values, without anchors or block scalars)"
    )]
    Unsupported { line: usize, what: String },
    #[error("cannot parse: {message}")]
    Parse { line: usize, message: String },
    /// A bug guard: the spliced text does not read back as intended.
    #[error(
        "the rewritten file would not hold what was intended, so it was left as it was (a bug in seal: please report it)"
    )]
    Unverified { line: usize },
    #[error("there is no SealedSecret number {0} in the file")]
    NoObject(usize),
}

impl RewriteError {
    /// The 1-based line of the file the error is about.
    pub fn line(&self) -> usize {
        match self {
            RewriteError::Unsupported { line, .. }
            | RewriteError::Parse { line, .. }
            | RewriteError::Unverified { line } => *line,
            RewriteError::NoObject(_) => 1,
        }
    }
}

/// Rewrites `text` so that each listed object (its index among the objects of the file, Lists
/// flattened, as [`crate::manifest::read_manifests`] counts them) holds the `encryptedData` and
/// `recipients` of the given spec. Entries that stay the same keep their bytes; the rest of
/// the file is untouched.
pub fn rewrite_items(
    text: &str,
    wanted: &[(usize, &SealedSecretSpec)],
) -> Result<String, RewriteError> {
    let docs = split_documents(text);
    let mut trees = Vec::with_capacity(docs.len());
    for doc in &docs {
        let offset = doc.text.as_ptr() as usize - text.as_ptr() as usize;
        trees.push(parse_tree(text, doc.text, offset)?);
    }
    let objects = objects_of(&trees);
    let mut splices = Vec::new();
    for (index, spec) in wanted {
        let (doc, _, object) = objects.get(*index).ok_or(RewriteError::NoObject(*index))?;
        let json = is_json(docs[*doc].text);
        let editor = Editor { text, json };
        splices.extend(editor.items(object, spec)?);
    }
    let out = apply(text, 0..text.len(), splices)?;
    verify(text, &out, &docs, &objects, wanted)?;
    Ok(out)
}

/// A node of the file and the bytes it spans. A block collection spans from its first child's
/// start to its last child's end; a flow one includes its brackets; a scalar its quotes.
#[derive(Debug)]
enum Node {
    Scalar {
        value: String,
        style: ScalarStyle,
        span: Range<usize>,
    },
    Seq {
        items: Vec<Node>,
        flow: bool,
        span: Range<usize>,
    },
    Map {
        entries: Vec<(Node, Node)>,
        flow: bool,
        span: Range<usize>,
    },
    Alias {
        span: Range<usize>,
    },
}

impl Node {
    fn span(&self) -> Range<usize> {
        match self {
            Node::Scalar { span, .. }
            | Node::Seq { span, .. }
            | Node::Map { span, .. }
            | Node::Alias { span } => span.clone(),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        match self {
            Node::Map { entries, .. } => entries.iter().find(|(k, _)| k.as_str() == Some(key)),
            _ => None,
        }
    }

    /// `key:` with nothing after it, `~` or `null`.
    fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { value, style: ScalarStyle::Plain, .. }
            if value.is_empty() || value == "~" || value == "null")
    }
}

enum Ev {
    Scalar(String, ScalarStyle),
    SeqStart(bool),
    SeqEnd,
    MapStart(bool),
    MapEnd,
    Alias,
}

fn parse_tree(whole: &str, doc: &str, offset: usize) -> Result<Node, RewriteError> {
    let mut events = Vec::new();
    for next in Parser::new_from_str(doc) {
        let (event, span) = next.map_err(|e| RewriteError::Parse {
            line: line_of(whole, offset) + e.marker().line().saturating_sub(1),
            message: e.to_string(),
        })?;
        let mut range = span
            .byte_range()
            .map(|r| r.start + offset..r.end + offset)
            .unwrap_or(offset..offset);
        let ev = match event {
            Event::Scalar(value, style, ..) => {
                // A block scalar's span runs on over the next line's indentation: end it at
                // its last line break, or its entry would take in the next one.
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    let trailing = whole[range.clone()].trim_end_matches([' ', '\t']);
                    range.end = range.start + trailing.len();
                }
                Ev::Scalar(value.into_owned(), style)
            }
            Event::SequenceStart(style, ..) => Ev::SeqStart(style == StructureStyle::Flow),
            Event::SequenceEnd => Ev::SeqEnd,
            Event::MappingStart(style, ..) => Ev::MapStart(style == StructureStyle::Flow),
            Event::MappingEnd => Ev::MapEnd,
            Event::Alias(..) | Event::UnresolvedAlias(..) => Ev::Alias,
            _ => continue,
        };
        events.push((ev, range));
    }
    let mut at = 0;
    build(&events, &mut at).ok_or_else(|| RewriteError::Parse {
        line: line_of(whole, offset),
        message: "no document".into(),
    })
}

fn build(events: &[(Ev, Range<usize>)], at: &mut usize) -> Option<Node> {
    let (ev, span) = events.get(*at)?;
    *at += 1;
    Some(match ev {
        Ev::Scalar(value, style) => Node::Scalar {
            value: value.clone(),
            style: *style,
            span: span.clone(),
        },
        Ev::Alias => Node::Alias { span: span.clone() },
        Ev::SeqStart(flow) => {
            let mut items = Vec::new();
            while !matches!(events.get(*at)?.0, Ev::SeqEnd) {
                items.push(build(events, at)?);
            }
            let end = close(
                &events[*at].1,
                *flow,
                items.last().map(|n| n.span().end),
                span,
            );
            *at += 1;
            Node::Seq {
                items,
                flow: *flow,
                span: span.start..end,
            }
        }
        Ev::MapStart(flow) => {
            let mut entries = Vec::new();
            while !matches!(events.get(*at)?.0, Ev::MapEnd) {
                let key = build(events, at)?;
                let value = build(events, at)?;
                entries.push((key, value));
            }
            let last = entries.last().map(|(k, v)| k.span().end.max(v.span().end));
            let end = close(&events[*at].1, *flow, last, span);
            *at += 1;
            Node::Map {
                entries,
                flow: *flow,
                span: span.start..end,
            }
        }
        Ev::SeqEnd | Ev::MapEnd => return None,
    })
}

/// Where a collection ends: after its closing bracket, or after its last child.
fn close(end_event: &Range<usize>, flow: bool, last: Option<usize>, start: &Range<usize>) -> usize {
    if flow {
        end_event.end
    } else {
        last.unwrap_or(start.end)
    }
}

/// The objects of the documents, Lists flattened: (document, item of a List, node).
fn objects_of(trees: &[Node]) -> Vec<(usize, Option<usize>, &Node)> {
    let mut out = Vec::new();
    for (doc, root) in trees.iter().enumerate() {
        let api_version = root.entry("apiVersion").and_then(|(_, v)| v.as_str());
        let kind = root.entry("kind").and_then(|(_, v)| v.as_str());
        if api_version == Some("v1") && kind.is_some_and(|k| k.ends_with("List")) {
            if let Some((_, Node::Seq { items, .. })) = root.entry("items") {
                out.extend(items.iter().enumerate().map(|(i, n)| (doc, Some(i), n)));
            }
            continue;
        }
        out.push((doc, None, root));
    }
    out
}

/// A change to the text: replace these bytes with that text.
type Splice = (Range<usize>, String);

/// `text[range]` with the splices (all inside `range`, none overlapping) applied.
fn apply(
    text: &str,
    range: Range<usize>,
    mut splices: Vec<Splice>,
) -> Result<String, RewriteError> {
    splices.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(range.len());
    let mut cursor = range.start;
    for (r, with) in splices {
        if r.start < cursor || r.end > range.end {
            return Err(RewriteError::Unverified {
                line: line_of(text, r.start),
            });
        }
        out.push_str(&text[cursor..r.start]);
        out.push_str(&with);
        cursor = r.end;
    }
    out.push_str(&text[cursor..range.end]);
    Ok(out)
}

/// What becomes of a mapping of the file (`spec.encryptedData` or `spec.recipients`).
struct MapEdit<'w> {
    /// The existing keys, in the file's order.
    keys: Vec<&'w str>,
    /// Whether `keys` are sorted (as seal writes them).
    sorted: bool,
    /// What becomes of each existing entry, in the file's order.
    actions: Vec<Action>,
    /// The entries to add.
    new: Vec<(&'w str, Wanted<'w>)>,
    /// How the existing entries are written, for the new ones to match.
    style: Style,
}

impl MapEdit<'_> {
    /// The index of the existing entry a new key goes after; None: before the first entry.
    /// New entries go where they sort among the existing keys if those are sorted, else at
    /// the end.
    fn anchor(&self, key: &str) -> Option<usize> {
        if self.sorted {
            self.keys.iter().rposition(|e| *e < key)
        } else {
            self.keys.len().checked_sub(1)
        }
    }
}

/// What becomes of an entry of the file.
enum Action {
    Keep,
    Remove,
    /// Its value rewritten by these splices.
    Rewrite(Vec<Splice>),
}

impl Action {
    /// The splices of an entry that stays (none if it is kept as is).
    fn splices(&self) -> Option<Vec<Splice>> {
        match self {
            Action::Keep => Some(Vec::new()),
            Action::Remove => None,
            Action::Rewrite(splices) => Some(splices.clone()),
        }
    }
}

/// What an entry should hold.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    Value(&'a str),
    List(&'a [String]),
}

struct Editor<'t> {
    text: &'t str,
    /// The document is JSON: new keys and values are double-quoted.
    json: bool,
}

impl Editor<'_> {
    fn unsupported(&self, at: usize, what: impl Into<String>) -> RewriteError {
        RewriteError::Unsupported {
            line: line_of(self.text, at),
            what: what.into(),
        }
    }

    fn items(&self, object: &Node, spec: &SealedSecretSpec) -> Result<Vec<Splice>, RewriteError> {
        let Some((_, spec_node @ Node::Map { .. })) = object.entry("spec") else {
            return Err(
                self.unsupported(object.span().start, "a SealedSecret without a spec mapping")
            );
        };
        let data: BTreeMap<&str, Wanted> = spec
            .encrypted_data
            .iter()
            .map(|(k, v)| (k.as_str(), Wanted::Value(v)))
            .collect();
        let records: BTreeMap<&str, Wanted> = spec
            .recipients
            .iter()
            .map(|(k, v)| (k.as_str(), Wanted::List(v)))
            .collect();
        let mut splices = Vec::new();
        for (field, wanted) in [("encryptedData", data), ("recipients", records)] {
            match spec_node.entry(field) {
                Some((key, map)) => splices.extend(self.map(field, key, map, &wanted)?),
                None if wanted.is_empty() => {}
                None => {
                    return Err(self.unsupported(
                        spec_node.span().start,
                        format!("spec.{field} is missing (add `{field}: {{}}` to the spec)"),
                    ));
                }
            }
        }
        Ok(splices)
    }

    /// The splices that make `map` (the value of `key`) hold exactly `wanted`.
    fn map(
        &self,
        field: &str,
        key: &Node,
        map: &Node,
        wanted: &BTreeMap<&str, Wanted>,
    ) -> Result<Vec<Splice>, RewriteError> {
        let (entries, flow, span) = match map {
            Node::Map {
                entries,
                flow,
                span,
            } => (entries, *flow, span.clone()),
            n if n.is_null() && wanted.is_empty() => return Ok(Vec::new()),
            n => {
                return Err(
                    self.unsupported(n.span().start, format!("spec.{field} is not a mapping"))
                );
            }
        };
        let mut actions = Vec::with_capacity(entries.len());
        let mut keys = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let name = k.as_str().ok_or_else(|| {
                self.unsupported(k.span().start, format!("a key of spec.{field}"))
            })?;
            keys.push(name);
            actions.push(match wanted.get(name) {
                None => Action::Remove,
                Some(w) if holds(v, *w) => Action::Keep,
                Some(w) => Action::Rewrite(self.value(k, v, *w)?),
            });
        }
        let new: Vec<(&str, Wanted)> = wanted
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .map(|(k, w)| (*k, *w))
            .collect();
        if new.is_empty() && actions.iter().all(|a| matches!(a, Action::Keep)) {
            return Ok(Vec::new());
        }
        let edit = MapEdit {
            sorted: keys.windows(2).all(|w| w[0] <= w[1]),
            keys,
            actions,
            new,
            style: Style::of(self, entries),
        };
        if flow {
            self.flow_map(entries, &span, &edit)
        } else {
            self.block_map(key, entries, &edit)
        }
    }

    fn block_map(
        &self,
        key: &Node,
        entries: &[(Node, Node)],
        edit: &MapEdit<'_>,
    ) -> Result<Vec<Splice>, RewriteError> {
        let (actions, new, style) = (&edit.actions, &edit.new, &edit.style);
        let anchor = |k: &str| edit.anchor(k);
        let text = self.text;
        let Some((first, _)) = entries.first() else {
            return Err(self.unsupported(key.span().end, "an empty block mapping"));
        };
        let first = first.span().start;
        let indent = line_prefix(text, first);
        if !indent.chars().all(|c| c == ' ') {
            return Err(self.unsupported(first, "a mapping that does not start on its own line"));
        }
        let region =
            line_start(text, first)..line_end(text, entries[entries.len() - 1].1.span().end);
        let new_after = |at: Option<usize>| -> String {
            new.iter()
                .filter(|(k, _)| anchor(k) == at)
                .map(|(k, w)| self.block_entry(&indent, k, *w, style))
                .collect()
        };
        let mut out = new_after(None);
        let mut kept_any = false;
        for (i, ((k, v), action)) in entries.iter().zip(actions).enumerate() {
            let entry = line_start(text, k.span().start)..line_end(text, v.span().end);
            if let Some(splices) = action.splices() {
                kept_any = true;
                let mut piece = apply(text, entry.clone(), splices)?;
                if !piece.ends_with('\n') {
                    piece.push('\n');
                }
                out.push_str(&piece);
            }
            out.push_str(&new_after(Some(i)));
            // Comment and blank lines between entries stay, whatever becomes of the entries.
            if let Some((next, _)) = entries.get(i + 1) {
                let gap = text.get(entry.end..line_start(text, next.span().start));
                out.push_str(
                    gap.ok_or_else(|| self.unsupported(entry.end, "two entries on one line"))?,
                );
            }
        }
        if !text[region.clone()].ends_with('\n') && out.ends_with('\n') {
            out.pop();
        }
        let mut splices = vec![(region, out)];
        if !kept_any && new.is_empty() {
            // Every entry removed: `field:` alone would read as null.
            let colon = self.colon_after(key)?;
            splices.push((colon + 1..colon + 1, " {}".into()));
        }
        Ok(splices)
    }

    fn block_entry(&self, indent: &str, key: &str, wanted: Wanted, style: &Style) -> String {
        let key = render_scalar(key, style.key, self.json);
        match wanted {
            Wanted::Value(v) => format!(
                "{indent}{key}: {}\n",
                render_scalar(v, style.value, self.json)
            ),
            Wanted::List([]) => format!("{indent}{key}: []\n"),
            Wanted::List(items) => {
                let prefix = style
                    .item_prefix
                    .clone()
                    .unwrap_or_else(|| format!("{indent}- "));
                let mut out = format!("{indent}{key}:\n");
                for item in items {
                    out.push_str(&prefix);
                    out.push_str(&render_scalar(item, style.item, self.json));
                    out.push('\n');
                }
                out
            }
        }
    }

    fn flow_map(
        &self,
        entries: &[(Node, Node)],
        span: &Range<usize>,
        edit: &MapEdit<'_>,
    ) -> Result<Vec<Splice>, RewriteError> {
        let (actions, new, style) = (&edit.actions, &edit.new, &edit.style);
        let anchor = |k: &str| edit.anchor(k);
        let text = self.text;
        let open = span.start;
        let close = span.end.saturating_sub(1);
        if text.as_bytes().get(open) != Some(&b'{') || text.as_bytes().get(close) != Some(&b'}') {
            return Err(self.unsupported(open, "a flow mapping without its braces"));
        }
        // New lines inside an empty JSON map are indented from its line's indentation.
        let line = line_prefix(text, open);
        let indent = &line[..line.len() - line.trim_start().len()];
        let spans: Vec<Range<usize>> = entries
            .iter()
            .map(|(k, v)| k.span().start..v.span().end)
            .collect();
        let layout = match flow_layout(text, open + 1..close, &spans) {
            Some(layout) => layout,
            None if self.json => FlowLayout {
                lead: format!("\n{indent}  "),
                trail: format!("\n{indent}"),
                sep: format!(",\n{indent}  "),
            },
            None => FlowLayout::default(),
        };
        let kv = entries.first().map_or(": ".to_owned(), |(k, v)| {
            text[k.span().end..v.span().start].to_owned()
        });
        // (text, index of the original entry)
        let mut pieces: Vec<(String, Option<usize>)> = Vec::new();
        let new_after = |at: Option<usize>, pieces: &mut Vec<(String, Option<usize>)>| {
            for (k, w) in new.iter().filter(|(k, _)| anchor(k) == at) {
                let key = render_scalar(k, style.key, self.json);
                let value = match w {
                    Wanted::Value(v) => render_scalar(v, style.value, self.json),
                    Wanted::List(items) => style.flow_list(items, self.json),
                };
                pieces.push((format!("{key}{kv}{value}"), None));
            }
        };
        new_after(None, &mut pieces);
        for (i, ((k, v), action)) in entries.iter().zip(actions).enumerate() {
            if let Some(splices) = action.splices() {
                let entry = k.span().start..v.span().end;
                pieces.push((apply(text, entry, splices)?, Some(i)));
            }
            new_after(Some(i), &mut pieces);
        }
        let inside = join_flow_pieces(text, &spans, &pieces, &layout);
        Ok(vec![(open + 1..close, inside)])
    }

    /// The splices that make the value `v` of entry `k` hold `wanted`.
    fn value(&self, k: &Node, v: &Node, wanted: Wanted) -> Result<Vec<Splice>, RewriteError> {
        match (v, wanted) {
            (Node::Scalar { style, span, .. }, Wanted::Value(new))
                if !matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) =>
            {
                Ok(vec![(span.clone(), render_scalar(new, *style, self.json))])
            }
            (
                Node::Seq {
                    items,
                    flow: true,
                    span,
                },
                Wanted::List(new),
            ) => Ok(self.flow_seq(items, span, new)),
            (
                Node::Seq {
                    items, flow: false, ..
                },
                Wanted::List(new),
            ) if !items.is_empty() => self.block_seq(k, items, new),
            _ => Err(self.unsupported(
                k.span().start,
                format!("the value of '{}'", k.as_str().unwrap_or_default()),
            )),
        }
    }

    /// The splice that makes a flow sequence `[…]` hold `new`, in its own layout.
    fn flow_seq(&self, items: &[Node], span: &Range<usize>, new: &[String]) -> Vec<Splice> {
        let item_style = items.first().map_or(default_style(self.json), scalar_style);
        let layout = flow_seq_layout(self.text, items, span).unwrap_or_default();
        let inside = layout.inside(new, item_style, self.json);
        vec![(span.start + 1..span.end - 1, inside)]
    }

    /// The splices that make a non-empty block sequence (`- …` lines) of entry `k` hold
    /// `new`; none left becomes `k: []`.
    fn block_seq(
        &self,
        k: &Node,
        items: &[Node],
        new: &[String],
    ) -> Result<Vec<Splice>, RewriteError> {
        let text = self.text;
        let first = items[0].span().start;
        let last = items[items.len() - 1].span().end;
        if new.is_empty() {
            let colon = self.colon_after(k)?;
            return Ok(vec![(
                colon + 1..line_end(text, last).min(text.len()),
                " []\n".into(),
            )]);
        }
        let prefix = line_prefix(text, first);
        let style = scalar_style(&items[0]);
        let lines: Vec<String> = new
            .iter()
            .map(|item| format!("{prefix}{}", render_scalar(item, style, self.json)))
            .collect();
        let end = text[last..].find('\n').map_or(text.len(), |i| last + i);
        Ok(vec![(line_start(text, first)..end, lines.join("\n"))])
    }

    /// The `:` after a mapping key.
    fn colon_after(&self, key: &Node) -> Result<usize, RewriteError> {
        let end = key.span().end;
        self.text[end..]
            .find(':')
            .map(|i| end + i)
            .ok_or_else(|| self.unsupported(end, "a key without its ':'"))
    }
}

/// How a flow collection (`{…}` or `[…]`) is laid out: the text after its opening bracket,
/// before its closing one, and between two entries.
struct FlowLayout {
    lead: String,
    trail: String,
    sep: String,
}

impl Default for FlowLayout {
    /// An empty YAML flow collection: `{a: x, b: y}`.
    fn default() -> Self {
        FlowLayout {
            lead: String::new(),
            trail: String::new(),
            sep: ", ".to_owned(),
        }
    }
}

impl FlowLayout {
    /// The text between the brackets of a flow list of `items` laid out so; empty for none.
    fn inside(&self, items: &[String], style: ScalarStyle, json: bool) -> String {
        if items.is_empty() {
            return String::new();
        }
        let body = join(items, &self.sep, style, json);
        format!("{}{body}{}", self.lead, self.trail)
    }
}

/// The layout of a flow collection whose inside (between its brackets) is `inner` and whose
/// entries stand at `spans`; `None` when it has none. With one entry the separator is
/// guessed: one entry a line when the lead holds a line break, else `, `.
fn flow_layout(text: &str, inner: Range<usize>, spans: &[Range<usize>]) -> Option<FlowLayout> {
    let (first, last) = (spans.first()?, spans.last()?);
    let lead = text[inner.start..first.start].to_owned();
    let trail = text[last.end..inner.end].to_owned();
    let sep = match spans.get(1) {
        Some(second) => text[first.end..second.start].to_owned(),
        None if lead.contains('\n') => format!(",{lead}"),
        None => ", ".to_owned(),
    };
    Some(FlowLayout { lead, trail, sep })
}

/// [`flow_layout`] of a flow sequence `[…]` at `span`.
fn flow_seq_layout(text: &str, items: &[Node], span: &Range<usize>) -> Option<FlowLayout> {
    let spans: Vec<Range<usize>> = items.iter().map(Node::span).collect();
    flow_layout(text, span.start + 1..span.end - 1, &spans)
}

/// The inside of a flow mapping made of `pieces` (text, index of the original entry, whose
/// span is in `spans`): two entries that were neighbours keep their own separator.
fn join_flow_pieces(
    text: &str,
    spans: &[Range<usize>],
    pieces: &[(String, Option<usize>)],
    layout: &FlowLayout,
) -> String {
    let mut inside = String::new();
    if pieces.is_empty() {
        return inside;
    }
    inside.push_str(&layout.lead);
    for (n, (piece, orig)) in pieces.iter().enumerate() {
        if n > 0 {
            match (pieces[n - 1].1, orig) {
                (Some(a), Some(b)) if b == &(a + 1) => {
                    inside.push_str(&text[spans[a].end..spans[*b].start]);
                }
                _ => inside.push_str(&layout.sep),
            }
        }
        inside.push_str(piece);
    }
    inside.push_str(&layout.trail);
    inside
}

/// How the existing entries of a mapping are written, for the new ones to match.
struct Style {
    key: ScalarStyle,
    value: ScalarStyle,
    item: ScalarStyle,
    /// The text before an item of a block list (`  - `).
    item_prefix: Option<String>,
    /// The layout of the items of a flow list.
    flow_list: Option<FlowLayout>,
}

impl Style {
    fn of(editor: &Editor, entries: &[(Node, Node)]) -> Self {
        let text = editor.text;
        let default = default_style(editor.json);
        let mut style = Style {
            key: entries.first().map_or(default, |(k, _)| scalar_style(k)),
            value: default,
            item: default,
            item_prefix: None,
            flow_list: None,
        };
        // The values' usual style: one value quoted by hand does not make the new ones quoted.
        let styles: Vec<ScalarStyle> = entries
            .iter()
            .filter(|(_, v)| matches!(v, Node::Scalar { .. }))
            .map(|(_, v)| scalar_style(v))
            .collect();
        let count = |s: &ScalarStyle| styles.iter().filter(|x| *x == s).count();
        if let Some(most) = styles.iter().max_by_key(|s| count(s))
            && count(most) > count(&default)
        {
            style.value = *most;
        }
        for (_, v) in entries {
            if let Node::Seq { items, flow, span } = v
                && let Some(first) = items.first()
            {
                style.item = scalar_style(first);
                if *flow {
                    style.flow_list = flow_seq_layout(text, items, span);
                } else {
                    style.item_prefix = Some(line_prefix(text, first.span().start));
                }
                break;
            }
        }
        style
    }

    fn flow_list(&self, items: &[String], json: bool) -> String {
        let default = FlowLayout::default();
        let layout = self.flow_list.as_ref().unwrap_or(&default);
        format!("[{}]", layout.inside(items, self.item, json))
    }
}

fn default_style(json: bool) -> ScalarStyle {
    if json {
        ScalarStyle::DoubleQuoted
    } else {
        ScalarStyle::Plain
    }
}

fn scalar_style(node: &Node) -> ScalarStyle {
    match node {
        Node::Scalar { style, .. } => *style,
        _ => ScalarStyle::Plain,
    }
}

fn join(items: &[String], sep: &str, style: ScalarStyle, json: bool) -> String {
    items
        .iter()
        .map(|i| render_scalar(i, style, json))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Whether `node` already holds `wanted`.
fn holds(node: &Node, wanted: Wanted) -> bool {
    match (node, wanted) {
        (Node::Scalar { value, .. }, Wanted::Value(w)) => value == w,
        (Node::Seq { items, .. }, Wanted::List(w)) => {
            items.len() == w.len() && items.iter().zip(w).all(|(n, w)| n.as_str() == Some(w))
        }
        _ => false,
    }
}

/// A string as a YAML scalar in `style` where that reads back as the same string; otherwise
/// double-quoted (JSON's escaping is valid YAML).
fn render_scalar(value: &str, style: ScalarStyle, json: bool) -> String {
    match style {
        ScalarStyle::Plain if !json && plain_reads_as_string(value) => value.to_owned(),
        ScalarStyle::SingleQuoted if !json => format!("'{}'", value.replace('\'', "''")),
        _ => serde_json::to_string(value).expect("a string serializes"),
    }
}

/// Plain only for the characters of base64, age recipients and item keys, starting with a
/// letter or one of `_./`, and never a word YAML 1.1 reads as a bool, a null or a number.
fn plain_reads_as_string(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", ".inf", ".nan",
    ];
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_./".contains(c));
    first_ok
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=._-".contains(c))
        && !WORDS.contains(&value.to_ascii_lowercase().as_str())
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// After the line break that ends the line holding the node that ends at `end` (or the end of
/// the text). A node ending with its line break (a block scalar) ends its own line.
fn line_end(text: &str, end: usize) -> usize {
    if text[..end].ends_with('\n') {
        return end;
    }
    text[end..].find('\n').map_or(text.len(), |i| end + i + 1)
}

/// The text of the line before `at`.
fn line_prefix(text: &str, at: usize) -> String {
    text[line_start(text, at)..at].to_owned()
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Parses both texts and checks that the new one is the old one with exactly the wanted items.
fn verify(
    old: &str,
    new: &str,
    old_docs: &[Document<'_>],
    objects: &[(usize, Option<usize>, &Node)],
    wanted: &[(usize, &SealedSecretSpec)],
) -> Result<(), RewriteError> {
    let first_line = wanted
        .first()
        .and_then(|(i, _)| objects.get(*i))
        .map_or(1, |(_, _, n)| line_of(old, n.span().start));
    let unverified = RewriteError::Unverified { line: first_line };
    let read = |docs: &[Document<'_>]| -> Option<Vec<serde_json::Value>> {
        docs.iter()
            .map(|d| parse_document::<serde_json::Value>(d).ok())
            .collect()
    };
    let mut expected = read(old_docs).ok_or(unverified.clone())?;
    for (index, spec) in wanted {
        let (doc, item, _) = objects.get(*index).ok_or(RewriteError::NoObject(*index))?;
        let object = match item {
            Some(i) => expected[*doc]
                .get_mut("items")
                .and_then(|items| items.get_mut(*i)),
            None => Some(&mut expected[*doc]),
        };
        let spec_value = object
            .and_then(|o| o.get_mut("spec"))
            .and_then(|s| s.as_object_mut())
            .ok_or(unverified.clone())?;
        for (field, value, empty) in [
            (
                "encryptedData",
                serde_json::to_value(&spec.encrypted_data),
                spec.encrypted_data.is_empty(),
            ),
            (
                "recipients",
                serde_json::to_value(&spec.recipients),
                spec.recipients.is_empty(),
            ),
        ] {
            let absent = spec_value.get(field).is_none_or(serde_json::Value::is_null);
            if !(absent && empty) {
                spec_value.insert(field.into(), value.map_err(|_| unverified.clone())?);
            }
        }
    }
    let got = read(&split_documents(new)).ok_or(unverified.clone())?;
    if got == expected {
        Ok(())
    } else {
        Err(unverified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Manifest, read_manifests};
    use proptest::prelude::*;

    #[track_caller]
    fn assert_contains(out: &str, want: &str) {
        assert!(out.contains(want), "{out}");
    }

    fn spec(data: &[(&str, &str)], records: &[(&str, &[&str])]) -> SealedSecretSpec {
        SealedSecretSpec {
            encrypted_data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            recipients: records
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..Default::default()
        }
    }

    const YAML: &str = "\
# The database, for prod.
apiVersion: v1
kind: ConfigMap # not touched
metadata: {name: cfg}
---
apiVersion: sealant.dev/v1alpha1
kind: SealedSecret
metadata:
  name: db   # owned by the db team
  namespace: prod
spec:
  # values sealed to the prod cluster
  encryptedData:
    a: YWdlAAA=   # first
    # b rotates monthly
    b: 'YWdlBBB='
    c: \"YWdlCCC=\"
  recipients:
    a:
    - age1one
    b:
    - age1one
    c: [age1one]
  scope: strict
";

    #[test]
    fn changes_only_the_lines_of_the_items_that_change() {
        let want = spec(
            &[("b", "YWdlNEW="), ("c", "YWdlCCC="), ("d", "YWdlDDD=")],
            &[
                ("b", &["age1one", "age1two"]),
                ("c", &["age1one"]),
                ("d", &["age1two"]),
            ],
        );
        let out = rewrite_items(YAML, &[(1, &want)]).unwrap();
        let expected = YAML
            .replace("    a: YWdlAAA=   # first\n", "")
            .replace("'YWdlBBB='", "'YWdlNEW='")
            .replace(
                "    c: \"YWdlCCC=\"\n",
                "    c: \"YWdlCCC=\"\n    d: YWdlDDD=\n",
            )
            .replace("    a:\n    - age1one\n", "")
            .replace(
                "    b:\n    - age1one\n",
                "    b:\n    - age1one\n    - age1two\n",
            )
            .replace(
                "    c: [age1one]\n",
                "    c: [age1one]\n    d:\n    - age1two\n",
            );
        assert_eq!(out, expected);
    }

    #[test]
    fn nothing_to_change_changes_nothing() {
        let same = spec(
            &[("a", "YWdlAAA="), ("b", "YWdlBBB="), ("c", "YWdlCCC=")],
            &[
                ("a", &["age1one"]),
                ("b", &["age1one"]),
                ("c", &["age1one"]),
            ],
        );
        assert_eq!(rewrite_items(YAML, &[(1, &same)]).unwrap(), YAML);
    }

    #[test]
    fn json_keeps_its_layout() {
        let json = "{\n  \"apiVersion\": \"sealant.dev/v1alpha1\",\n  \"kind\": \"SealedSecret\",\n  \"metadata\": {\n    \"name\": \"db\"\n  },\n  \"spec\": {\n    \"encryptedData\": {\n      \"a\": \"YWdlAAA=\",\n      \"c\": \"YWdlCCC=\"\n    },\n    \"recipients\": {\n      \"a\": [\n        \"age1one\"\n      ],\n      \"c\": [\n        \"age1one\"\n      ]\n    }\n  }\n}\n";
        let want = spec(
            &[("a", "YWdlAAA="), ("b", "YWdlBBB="), ("c", "YWdlNEW=")],
            &[
                ("a", &["age1one"]),
                ("b", &["age1two"]),
                ("c", &["age1one"]),
            ],
        );
        let out = rewrite_items(json, &[(0, &want)]).unwrap();
        let expected = json
            .replace("\"YWdlCCC=\"", "\"YWdlNEW=\"")
            .replace(
                "      \"a\": \"YWdlAAA=\",\n",
                "      \"a\": \"YWdlAAA=\",\n      \"b\": \"YWdlBBB=\",\n",
            )
            .replace(
                "        \"age1one\"\n      ],\n      \"c\"",
                "        \"age1one\"\n      ],\n      \"b\": [\n        \"age1two\"\n      ],\n      \"c\"",
            );
        assert_eq!(out, expected);
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
        // Removing the last entry takes its separator with it.
        let want = spec(&[("a", "YWdlAAA=")], &[("a", &["age1one"])]);
        let out = rewrite_items(json, &[(0, &want)]).unwrap();
        assert_contains(
            &out,
            "\"encryptedData\": {\n      \"a\": \"YWdlAAA=\"\n    },",
        );
    }

    #[test]
    fn lists_and_flow_maps_and_emptied_maps() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: sealant.dev/v1alpha1\n  kind: SealedSecret\n  metadata: {name: a}\n  spec:\n    encryptedData: {x: YWdlX, y: YWdlY}   # flow\n    recipients: {x: [age1one], y: [age1one]}\n";
        let want = spec(
            &[("x", "YWdlX"), ("z", "YWdlZ")],
            &[("x", &["age1one"]), ("z", &["age1one"])],
        );
        let out = rewrite_items(list, &[(0, &want)]).unwrap();
        assert_contains(&out, "    encryptedData: {x: YWdlX, z: YWdlZ}   # flow\n");
        assert_contains(&out, "    recipients: {x: [age1one], z: [age1one]}\n");
        let out = rewrite_items(YAML, &[(1, &SealedSecretSpec::default())]).unwrap();
        assert_contains(
            &out,
            "  encryptedData: {}\n    # b rotates monthly\n  recipients: {}\n  scope",
        );
    }

    #[test]
    fn refuses_what_it_cannot_splice() {
        let aliased = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData:\n    x: &v YWdlX\n    y: *v\n  recipients: {}\n";
        let want = spec(&[("x", "YWdlX"), ("y", "YWdlZ")], &[]);
        let err = rewrite_items(aliased, &[(0, &want)]).unwrap_err();
        assert!(
            matches!(err, RewriteError::Unsupported { line: 7, .. }),
            "{err:?}"
        );
        // The line a CLI error names.
        assert_eq!(err.line(), 7);
        let missing = rewrite_items(aliased, &[(3, &want)]).unwrap_err();
        assert_eq!(missing, RewriteError::NoObject(3));
        assert_eq!(missing.line(), 1, "no such object: the file's first line");
    }

    #[test]
    fn a_null_map_is_an_empty_one_and_other_shapes_are_refused() {
        let object = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData: {x: YWdlX}\n";
        let want = spec(&[("x", "YWdlX")], &[]);
        for null in ["", " ~", " null"] {
            let text = format!("{object}  recipients:{null}\n");
            assert_eq!(rewrite_items(&text, &[(0, &want)]), Ok(text.clone()));
        }
        for other in [" [age1x]", " age1x"] {
            let text = format!("{object}  recipients:{other}\n");
            let err = rewrite_items(&text, &[(0, &want)]).unwrap_err();
            assert!(
                matches!(&err, RewriteError::Unsupported { line: 6, what } if what == "spec.recipients is not a mapping"),
                "{other}: {err:?}"
            );
        }
    }

    #[test]
    fn a_missing_map_is_added_by_hand_unless_nothing_goes_in_it() {
        let text = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData: {x: YWdlX}\n";
        let unchanged = spec(&[("x", "YWdlX")], &[]);
        assert_eq!(rewrite_items(text, &[(0, &unchanged)]), Ok(text.into()));
        let recorded = spec(&[("x", "YWdlX")], &[("x", &["age1x"])]);
        let err = rewrite_items(text, &[(0, &recorded)]).unwrap_err();
        assert!(
            matches!(&err, RewriteError::Unsupported { line: 5, what }
                if what == "spec.recipients is missing (add `recipients: {}` to the spec)"),
            "{err:?}"
        );
    }

    #[test]
    fn splices_may_touch_but_not_overlap_or_leave_their_range() {
        let text = "ab\ncd\nef\n";
        let splice = |r: Range<usize>, with: &str| (r, with.to_owned());
        // Adjacent, given out of order.
        let touching = vec![splice(4..5, "D"), splice(3..4, "C")];
        assert_eq!(
            apply(text, 0..text.len(), touching),
            Ok("ab\nCD\nef\n".into())
        );
        let overlapping = vec![splice(3..5, "CD"), splice(4..6, "X")];
        assert_eq!(
            apply(text, 0..text.len(), overlapping),
            Err(RewriteError::Unverified { line: 2 })
        );
        let outside = vec![splice(6..8, "X")];
        assert_eq!(
            apply(text, 0..7, outside),
            Err(RewriteError::Unverified { line: 3 })
        );
    }

    #[test]
    fn block_scalars_are_kept_when_unchanged_and_refused_when_changed() {
        let text = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData:\n    x: |-\n      YWdlX\n    y: YWdlY\n  recipients: {}\n";
        let want = spec(&[("x", "YWdlX"), ("y", "YWdlNEW")], &[]);
        let changed = text.replace("y: YWdlY", "y: YWdlNEW");
        assert_eq!(rewrite_items(text, &[(0, &want)]), Ok(changed));
        // Removed: all its lines go.
        let want = spec(&[("y", "YWdlY")], &[]);
        let removed = text.replace("    x: |-\n      YWdlX\n", "");
        assert_eq!(rewrite_items(text, &[(0, &want)]), Ok(removed));
        // Last in its map, folded, followed by a less indented line: the same.
        let last = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData:\n    w: YWdlW\n    x: >-\n      YWdlX\n  recipients: {}\n";
        let want = spec(&[("w", "YWdlNEW"), ("x", "YWdlX")], &[]);
        let changed = last.replace("w: YWdlW", "w: YWdlNEW");
        assert_eq!(rewrite_items(last, &[(0, &want)]), Ok(changed));
        let want = spec(&[("x", "YWdlNEW"), ("y", "YWdlY")], &[]);
        let err = rewrite_items(text, &[(0, &want)]).unwrap_err();
        assert!(
            matches!(&err, RewriteError::Unsupported { line: 6, what } if what == "the value of 'x'"),
            "{err:?}"
        );
    }

    #[test]
    fn empty_maps_are_filled_in_their_documents_style() {
        let want = spec(&[("x", "YWdlX")], &[("x", &["age1one"])]);
        let yaml = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData: {}\n  recipients: {}\n";
        let filled = yaml
            .replace("encryptedData: {}", "encryptedData: {x: YWdlX}")
            .replace("recipients: {}", "recipients: {x: [age1one]}");
        assert_eq!(rewrite_items(yaml, &[(0, &want)]), Ok(filled));
        let json = "{\n  \"apiVersion\": \"sealant.dev/v1alpha1\",\n  \"kind\": \"SealedSecret\",\n  \"metadata\": {\"name\": \"a\"},\n  \"spec\": {\n    \"encryptedData\": {},\n    \"recipients\": {}\n  }\n}\n";
        let out = rewrite_items(json, &[(0, &want)]).unwrap();
        assert_contains(
            &out,
            "    \"encryptedData\": {\n      \"x\": \"YWdlX\"\n    },\n    \"recipients\": {\n      \"x\": [\"age1one\"]\n    }\n",
        );
    }

    #[test]
    fn one_entry_flow_collections_grow_in_their_layout() {
        let text = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData: {x: YWdlX}\n  recipients: {x: [age1one]}\n";
        let want = spec(
            &[("x", "YWdlX"), ("z", "YWdlZ")],
            &[("x", &["age1one", "age1two"]), ("z", &["age1one"])],
        );
        let grown = text
            .replace("{x: YWdlX}", "{x: YWdlX, z: YWdlZ}")
            .replace("{x: [age1one]}", "{x: [age1one, age1two], z: [age1one]}");
        assert_eq!(rewrite_items(text, &[(0, &want)]), Ok(grown));
        // One entry a line: the next goes on its own line too.
        let json = "{\n  \"apiVersion\": \"sealant.dev/v1alpha1\",\n  \"kind\": \"SealedSecret\",\n  \"metadata\": {\"name\": \"a\"},\n  \"spec\": {\n    \"encryptedData\": {\n      \"x\": \"YWdlX\"\n    },\n    \"recipients\": {}\n  }\n}\n";
        let want = spec(&[("x", "YWdlX"), ("z", "YWdlZ")], &[]);
        let grown = json.replace("\"YWdlX\"\n", "\"YWdlX\",\n      \"z\": \"YWdlZ\"\n");
        assert_eq!(rewrite_items(json, &[(0, &want)]), Ok(grown));
    }

    #[test]
    fn a_map_emptied_gets_braces_after_its_colon_wherever_that_is() {
        let text = "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n  encryptedData: {}\n  recipients :\n    x:\n    - age1one\n";
        let emptied = text.replace(
            "  recipients :\n    x:\n    - age1one\n",
            "  recipients : {}\n",
        );
        assert_eq!(rewrite_items(text, &[(0, &spec(&[], &[]))]), Ok(emptied));
    }

    const HEAD: &str =
        "kind: SealedSecret\napiVersion: sealant.dev/v1alpha1\nmetadata: {name: a}\nspec:\n";

    #[test]
    fn neighbours_in_a_flow_map_keep_their_own_separator() {
        let text = format!("{HEAD}  encryptedData: {{a: A, b: B,   d: D}}\n  recipients: {{}}\n");
        let want = spec(&[("a", "A"), ("b", "B"), ("d", "D"), ("e", "E")], &[]);
        let out = rewrite_items(&text, &[(0, &want)]).unwrap();
        assert_contains(&out, "  encryptedData: {a: A, b: B,   d: D, e: E}\n");
    }

    #[test]
    fn new_entries_take_the_usual_style_of_their_map() {
        // Keys and most values single-quoted: new ones too.
        let quoted = format!(
            "{HEAD}  encryptedData:\n    'a': 'A'\n    'b': 'B'\n    'c': C\n  recipients: {{}}\n"
        );
        let want = spec(&[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")], &[]);
        let out = rewrite_items(&quoted, &[(0, &want)]).unwrap();
        assert_contains(&out, "    'c': C\n    'd': 'D'\n");
        // One value quoted by hand among plain ones: new ones plain.
        let plain =
            format!("{HEAD}  encryptedData:\n    a: 'A'\n    b: B\n    c: C\n  recipients: {{}}\n");
        let out = rewrite_items(&plain, &[(0, &want)]).unwrap();
        assert_contains(&out, "    c: C\n    d: D\n");
    }

    #[test]
    fn an_unchanged_list_keeps_its_comments() {
        let text = format!(
            "{HEAD}  encryptedData: {{x: X, z: Z}}\n  recipients:\n    x:\n    - age1one # primary\n    - age1two\n    z: [age1one]\n"
        );
        let want = spec(
            &[("x", "X"), ("z", "Z")],
            &[("x", &["age1one", "age1two"]), ("z", &["age1two"])],
        );
        let out = rewrite_items(&text, &[(0, &want)]).unwrap();
        assert_eq!(out, text.replace("z: [age1one]", "z: [age1two]"));
    }

    #[test]
    fn scalars_are_plain_only_where_they_read_back_as_the_same_string() {
        for plain in [
            "YWdlX+/=",
            "age1qyqs",
            "_k",
            ".dockerconfigjson",
            "tls.crt",
            "a-b_c",
        ] {
            assert!(plain_reads_as_string(plain), "{plain}");
            assert_eq!(render_scalar(plain, ScalarStyle::Plain, false), plain);
        }
        for quoted in [
            "", "1abc", "-x", "+x", "a b", "a:b", "a#b", "Yes", "NULL", "y", ".inf",
        ] {
            assert!(!plain_reads_as_string(quoted), "{quoted}");
            let rendered = render_scalar(quoted, ScalarStyle::Plain, false);
            assert_eq!(rendered, serde_json::to_string(quoted).unwrap());
        }
        assert_eq!(
            render_scalar("it's", ScalarStyle::SingleQuoted, false),
            "'it''s'"
        );
        // JSON: always a JSON string, whatever the style asked for.
        for style in [ScalarStyle::Plain, ScalarStyle::SingleQuoted] {
            assert_eq!(render_scalar("YWdlX", style, true), "\"YWdlX\"");
        }
    }

    #[test]
    fn the_bug_guard_refuses_a_text_that_does_not_hold_what_was_intended() {
        let text =
            format!("kind: ConfigMap\n---\n{HEAD}  encryptedData: {{x: X}}\n  recipients: {{}}\n");
        let want = spec(&[("x", "NEW")], &[]);
        let wanted = [(1, &want)];
        let docs = split_documents(&text);
        let trees: Vec<Node> = docs
            .iter()
            .map(|d| {
                let offset = d.text.as_ptr() as usize - text.as_ptr() as usize;
                parse_tree(&text, d.text, offset).unwrap()
            })
            .collect();
        let objects = objects_of(&trees);
        let good = text.replace("{x: X}", "{x: NEW}");
        assert_eq!(verify(&text, &good, &docs, &objects, &wanted), Ok(()));
        // The SealedSecret starts on line 3.
        for bad in [
            text.clone(),
            good.replace("{x: NEW}", "{x: NEW, z: Z}"),
            good.replace("name: a", "name: b"),
            good.replace("kind: ConfigMap", "kind: Secret"),
        ] {
            assert_eq!(
                verify(&text, &bad, &docs, &objects, &wanted),
                Err(RewriteError::Unverified { line: 3 }),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_parse_error_names_its_line_in_the_whole_file() {
        let text = "kind: ConfigMap\nmetadata: {name: c}\n---\nkind: SealedSecret\nspec: {a: [b}\n";
        let err = rewrite_items(text, &[(0, &spec(&[], &[]))]).unwrap_err();
        assert!(
            matches!(err, RewriteError::Parse { line: 5, .. }),
            "{err:?}"
        );
    }

    fn sealed(
        name: &str,
        data: &BTreeMap<String, String>,
        records: &BTreeMap<String, Vec<String>>,
    ) -> crate::SealedSecret {
        let mut s = crate::SealedSecret::new(
            name,
            SealedSecretSpec {
                encrypted_data: data.clone(),
                recipients: records.clone(),
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("prod".into());
        s
    }

    fn items() -> impl Strategy<Value = BTreeMap<String, (String, Vec<String>)>> {
        prop::collection::btree_map(
            "[a-f]{1,2}|\\.dockerconfigjson|true|1",
            (
                "YWdl[A-Za-z0-9+/]{8,12}={0,2}",
                prop::collection::vec("age1[a-z0-9]{3}", 0..3),
            ),
            0..6,
        )
    }

    fn split(
        items: &BTreeMap<String, (String, Vec<String>)>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
        (
            items
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect(),
            items
                .iter()
                .map(|(k, (_, r))| (k.clone(), r.clone()))
                .collect(),
        )
    }

    proptest! {
        /// Random files as seal writes them (YAML with comments added, or JSON), random new
        /// items: the result reads back as intended, and every line of an item that did not
        /// change is still there.
        #[test]
        fn random_edits_read_back_as_intended(before in items(), after in items(), json in any::<bool>()) {
            let (d0, r0) = split(&before);
            let (d1, r1) = split(&after);
            let objects = [sealed("a", &d0, &r0)];
            let text = if json {
                crate::output::to_json(&objects).unwrap()
            } else {
                let other = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"});
                let yaml = crate::output::to_yaml_stream(&[serde_json::to_value(&objects[0]).unwrap(), other]).unwrap();
                // A comment after every line of the SealedSecret.
                yaml.lines().map(|l| if l.starts_with("---") { format!("{l}\n") } else { format!("{l} # c\n") }).collect()
            };
            let want = SealedSecretSpec { encrypted_data: d1.clone(), recipients: r1.clone(), ..Default::default() };
            let out = rewrite_items(&text, &[(0, &want)]).unwrap();
            let objects = read_manifests(&out).unwrap();
            let Manifest::SealedSecret(got) = &objects[0].value else { panic!("not sealed") };
            prop_assert_eq!(&got.spec.encrypted_data, &d1);
            prop_assert_eq!(&got.spec.recipients, &r1);
            for (key, value) in &d0 {
                if d1.get(key) == Some(value) {
                    let line = text.lines().find(|l| l.contains(value.as_str())).unwrap();
                    prop_assert!(out.lines().any(|l| l == line), "{line:?} lost:\n{out}");
                }
            }
            // Everything before the items is untouched.
            let head = text.find("encryptedData").unwrap();
            prop_assert_eq!(&out[..head], &text[..head]);
            if d0 == d1 && r0 == r1 {
                prop_assert_eq!(out, text);
            }
        }
    }
}
