//! The filter lexer: words, quoted strings (JSON escapes decoded by serde_json), brackets and
//! parentheses, with byte positions for error messages. One linear pass.

use super::error::{bad, ScimError, ScimType};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(&'a str),
}

impl Tok<'_> {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Str(_) => "a quoted string".into(),
            Tok::Word(w) => format!("'{}'", clip(w)),
        }
    }
}

pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.:$+".contains(c)
}

pub(crate) fn lex(text: &str) -> Result<Vec<(Tok<'_>, usize)>, ScimError> {
    let bytes = text.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => toks.push((Tok::LParen, start)),
            b')' => toks.push((Tok::RParen, start)),
            b'[' => toks.push((Tok::LBracket, start)),
            b']' => toks.push((Tok::RBracket, start)),
            b'"' => {
                let mut j = i + 1;
                let end = loop {
                    match bytes.get(j) {
                        None => {
                            return bad(
                                ScimType::InvalidFilter,
                                format!("invalid filter: the string at position {start} has no closing quote"),
                            )
                        }
                        Some(b'\\') => j += 2,
                        Some(b'"') => break j,
                        Some(_) => j += 1,
                    }
                };
                let s: String = serde_json::from_str(&text[start..=end]).map_err(|_| {
                    ScimError::bad_request(
                        ScimType::InvalidFilter,
                        format!("invalid filter: the string at position {start} has an invalid escape or control character"),
                    )
                })?;
                toks.push((Tok::Str(s), start));
                i = end + 1;
                continue;
            }
            _ if word_char(c as char) => {
                let mut j = i;
                while j < bytes.len() && word_char(bytes[j] as char) {
                    j += 1;
                }
                toks.push((Tok::Word(&text[i..j]), start));
                i = j;
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return bad(
                    ScimType::InvalidFilter,
                    format!("invalid filter: unexpected character {ch:?} at position {start}"),
                );
            }
        }
        i += 1;
    }
    Ok(toks)
}
