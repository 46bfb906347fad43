//! serde over [`Node`]: typed config and rule files with errors that name the line and, for an
//! unknown key, the nearest valid one.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{Entry, Mark, Node, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DeError {
    pub mark: Option<Mark>,
    pub message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mark {
            Some(m) => write!(f, "line {}, column {}: {}", m.line, m.col, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            mark: None,
            message: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            mark: None,
            message: unknown_word_message("key", field, expected),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            mark: None,
            message: unknown_word_message("value", variant, expected),
        }
    }
}

/// "unknown key `sevrity` (did you mean `severity`?)".
pub fn unknown_word_message(what: &str, word: &str, expected: &[&str]) -> String {
    match nearest(word, expected.iter().copied()) {
        Some(best) => format!("unknown {what} `{word}` (did you mean `{best}`?)"),
        None if expected.is_empty() => format!("unknown {what} `{word}`"),
        None => format!(
            "unknown {what} `{word}`, expected one of: {}",
            expected.join(", ")
        ),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe { node })
}

fn at(err: DeError, mark: Mark) -> DeError {
    DeError {
        mark: err.mark.or(Some(mark)),
        message: err.message,
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
}

impl NodeDe<'_> {
    fn mark(&self) -> Mark {
        self.node.span.start
    }

    fn invalid(&self, expected: &str) -> DeError {
        DeError {
            mark: Some(self.mark()),
            message: format!("expected {expected}, found {}", self.node.kind_name()),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mark = self.mark();
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                current: None,
            }),
        };
        result.map_err(|e| at(e, mark))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Kubernetes-style text fields accept plain numbers (`name: 2024`) as their text.
        match &self.node.value {
            Value::Seq(_) | Value::Map(_) => Err(self.invalid("a string")),
            Value::Str(s) => visitor.visit_str(s).map_err(|e| at(e, self.mark())),
            _ => visitor
                .visit_string(self.node.scalar_text().unwrap_or_default())
                .map_err(|e| at(e, self.mark())),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mark = self.mark();
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| at(e, mark)),
            Value::Map(entries) if entries.len() == 1 => visitor
                .visit_enum(EnumDe { entry: &entries[0] })
                .map_err(|e| at(e, mark)),
            _ => Err(self.invalid("a name or a single-key mapping")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe { node })
                .map(Some)
                .map_err(|e| at(e, node.span.start)),
            None => Ok(None),
        }
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, Entry>,
    current: Option<&'a Entry>,
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        seed.deserialize(entry.key.as_str().into_deserializer())
            .map(Some)
            .map_err(|e: DeError| at(e, entry.key_span.start))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self.current.take().ok_or_else(|| DeError {
            mark: None,
            message: "value requested before key".into(),
        })?;
        seed.deserialize(NodeDe { node: &entry.value })
            .map_err(|e| at(e, entry.value.span.start))
    }
}

struct EnumDe<'a> {
    entry: &'a Entry,
}

impl<'de, 'a> EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let key_mark = self.entry.key_span.start;
        let value = seed
            .deserialize(self.entry.key.as_str().into_deserializer())
            .map_err(|e: DeError| at(e, key_mark))?;
        Ok((
            value,
            NodeDe {
                node: &self.entry.value,
            },
        ))
    }
}

impl<'de> VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.node.is_null() {
            Ok(())
        } else {
            Err(self.invalid("no value"))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}
