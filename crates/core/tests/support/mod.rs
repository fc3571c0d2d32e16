//! Helpers shared by the property tests (crates/core/tests/fuzz_properties.rs) and the
//! cargo-fuzz targets (fuzz/fuzz_targets/, which include this file by path), so both check
//! the same things the same way. Standard library only.

// Each includer uses part of it.
#![allow(dead_code)]

/// Lines as YAML counts them: LF, CRLF and a lone CR each end one (YAML 1.2, 5.4). The
/// readers report lines that way, so a lone CR starts a new line in their messages.
pub fn yaml_lines(text: &str) -> usize {
    let bytes = text.as_bytes();
    let breaks = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    breaks + 1
}

/// The header records of an age file: `(start, end)` byte ranges of each `-> ` stanza, and
/// where the `---` MAC line starts. None when the header no longer parses this way.
pub fn records(file: &[u8]) -> Option<(Vec<(usize, usize)>, usize)> {
    let first = file.iter().position(|&b| b == b'\n')? + 1;
    let mac = first
        + find(&file[first..], b"\n---")
            .map(|i| i + 1)
            .or_else(|| file[first..].starts_with(b"---").then_some(0))?;
    let mut starts: Vec<usize> = (first..mac)
        .filter(|&i| (i == first || file[i - 1] == b'\n') && file[i..].starts_with(b"-> "))
        .collect();
    if starts.first() != Some(&first) {
        return None;
    }
    starts.push(mac);
    Some((starts.windows(2).map(|w| (w[0], w[1])).collect(), mac))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Rebuilds the file with its header records edited; None when it has no such header.
pub fn with_records(file: &[u8], edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Option<Vec<u8>> {
    let (ranges, mac) = records(file)?;
    let mut recs: Vec<Vec<u8>> = ranges.iter().map(|&(s, e)| file[s..e].to_vec()).collect();
    edit(&mut recs);
    let mut out = file[..ranges[0].0].to_vec();
    out.extend(recs.concat());
    out.extend_from_slice(&file[mac..]);
    Some(out)
}
