//! Reading the CLI's JSON lines in tests, without a JSON library: the
//! fields checked are numbers, booleans and strings without escapes.

/// The lines of `bytes` that are JSON objects.
pub fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// The value of `"key":` in a JSON line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next();
    }
    Some(&rest[..rest.find([',', '}']).unwrap_or(rest.len())])
}

/// The line's `"event"`; panics on a line without one.
pub fn event(line: &str) -> &str {
    field(line, "event").unwrap()
}
