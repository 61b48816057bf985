//! `tokenizer_config.json`: the options transformers' `T5TokenizerFast` takes from a model
//! directory next to `spiece.model`.

use serde_json::Value;

use crate::error::TokenizerError;

/// A token named in the config, with the flags an `AddedToken` dict may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenSpec {
    pub(crate) content: String,
    pub(crate) lstrip: bool,
    pub(crate) rstrip: bool,
    pub(crate) single_word: bool,
    pub(crate) normalized: bool,
    pub(crate) special: bool,
}

impl TokenSpec {
    pub(crate) fn plain(content: &str) -> Self {
        TokenSpec {
            content: content.to_string(),
            lstrip: false,
            rstrip: false,
            single_word: false,
            normalized: false,
            special: true,
        }
    }
}

/// T5 tokenizer options, with transformers' defaults.
#[derive(Clone, Debug)]
pub(crate) struct T5Config {
    pub(crate) extra_ids: usize,
    pub(crate) eos: TokenSpec,
    pub(crate) unk: TokenSpec,
    pub(crate) pad: TokenSpec,
    /// `additional_special_tokens` that are not `<extra_id_N>`.
    pub(crate) additional: Vec<TokenSpec>,
    /// `added_tokens_decoder`: (id, token) pairs whose flags override the defaults.
    pub(crate) added_tokens_decoder: Vec<(u32, TokenSpec)>,
    pub(crate) add_prefix_space: bool,
    pub(crate) legacy: bool,
}

impl Default for T5Config {
    fn default() -> Self {
        T5Config {
            extra_ids: 100,
            eos: TokenSpec::plain("</s>"),
            unk: TokenSpec::plain("<unk>"),
            pad: TokenSpec::plain("<pad>"),
            additional: Vec::new(),
            added_tokens_decoder: Vec::new(),
            add_prefix_space: true,
            legacy: true,
        }
    }
}

/// Largest `extra_ids` accepted (T5 uses 100); guards against absurd allocations.
const MAX_EXTRA_IDS: u64 = 1 << 20;

impl T5Config {
    /// Parses the JSON text of `tokenizer_config.json`; `origin` names it in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Self, TokenizerError> {
        let v: Value =
            serde_json::from_str(text).map_err(|source| TokenizerError::Json { origin: origin.to_string(), source })?;
        let Value::Object(obj) = &v else {
            return Err(TokenizerError::invalid(origin, "(root)", &v, "expected a JSON object"));
        };
        let mut c = T5Config::default();
        if let Some(x) = obj.get("extra_ids").filter(|x| !x.is_null()) {
            let n = x.as_u64().filter(|&n| n <= MAX_EXTRA_IDS).ok_or_else(|| {
                TokenizerError::invalid(origin, "extra_ids", x, "expected a small non-negative integer")
            })?;
            c.extra_ids = n as usize;
        }
        for (key, slot) in [("eos_token", &mut c.eos), ("unk_token", &mut c.unk), ("pad_token", &mut c.pad)] {
            if let Some(x) = obj.get(key).filter(|x| !x.is_null()) {
                *slot = token_spec(x, origin, key)?;
            }
        }
        if let Some(b) = obj.get("add_prefix_space").filter(|x| !x.is_null()) {
            c.add_prefix_space = b
                .as_bool()
                .ok_or_else(|| TokenizerError::invalid(origin, "add_prefix_space", b, "expected true or false"))?;
        }
        if let Some(b) = obj.get("legacy").filter(|x| !x.is_null()) {
            c.legacy =
                b.as_bool().ok_or_else(|| TokenizerError::invalid(origin, "legacy", b, "expected true or false"))?;
        }
        if let Some(x) = obj.get("additional_special_tokens").filter(|x| !x.is_null()) {
            let Value::Array(items) = x else {
                return Err(TokenizerError::invalid(origin, "additional_special_tokens", x, "expected a list"));
            };
            let mut extra = 0usize;
            for (i, item) in items.iter().enumerate() {
                let t = token_spec(item, origin, &format!("additional_special_tokens[{i}]"))?;
                if t.content.contains("<extra_id_") {
                    extra += 1;
                } else {
                    c.additional.push(t);
                }
            }
            // transformers' T5 rule: extra-id tokens in the list must match `extra_ids`.
            if extra > 0 && c.extra_ids > 0 && extra != c.extra_ids {
                return Err(TokenizerError::invalid(
                    origin,
                    "additional_special_tokens",
                    format!("{extra} <extra_id_N> tokens"),
                    format!("extra_ids is {}; the two must agree", c.extra_ids),
                ));
            }
        }
        if let Some(x) = obj.get("added_tokens_decoder").filter(|x| !x.is_null()) {
            let Value::Object(map) = x else {
                return Err(TokenizerError::invalid(origin, "added_tokens_decoder", x, "expected an object"));
            };
            for (k, item) in map {
                let field = format!("added_tokens_decoder.{k}");
                let id: u32 =
                    k.parse().map_err(|_| TokenizerError::invalid(origin, &field, k, "key is not a token id"))?;
                c.added_tokens_decoder.push((id, token_spec(item, origin, &field)?));
            }
            c.added_tokens_decoder.sort_by_key(|(id, _)| *id);
        }
        Ok(c)
    }
}

/// A token given as a string or as an `AddedToken` dict (`{"content": ..., "lstrip": ...}`).
pub(crate) fn token_spec(v: &Value, origin: &str, field: &str) -> Result<TokenSpec, TokenizerError> {
    match v {
        Value::String(s) => Ok(TokenSpec::plain(s)),
        Value::Object(o) => {
            let content = o
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| TokenizerError::missing(origin, format!("{field}.content")))?;
            let flag = |name: &str, default: bool| o.get(name).and_then(Value::as_bool).unwrap_or(default);
            Ok(TokenSpec {
                content: content.to_string(),
                lstrip: flag("lstrip", false),
                rstrip: flag("rstrip", false),
                single_word: flag("single_word", false),
                normalized: flag("normalized", false),
                special: flag("special", true),
            })
        }
        other => Err(TokenizerError::invalid(origin, field, other, "expected a string or an object with `content`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = T5Config::parse(
            r#"{"extra_ids": 3, "eos_token": {"content": "</s>", "lstrip": false},
                "additional_special_tokens": ["<extra_id_0>", "<extra_id_1>", "<extra_id_2>", "<sep>"],
                "model_max_length": 512}"#,
            "cfg",
        )
        .unwrap();
        assert_eq!(c.extra_ids, 3);
        assert_eq!(c.additional, vec![TokenSpec::plain("<sep>")]);
        assert!(c.add_prefix_space && c.legacy);
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = T5Config::parse(r#"{"extra_ids": "many"}"#, "tokenizer_config.json").unwrap_err();
        assert!(e.to_string().contains("`extra_ids` = \"many\""), "{e}");
        let e = T5Config::parse(r#"{"extra_ids": 2, "additional_special_tokens": ["<extra_id_0>"]}"#, "c").unwrap_err();
        assert!(e.to_string().contains("additional_special_tokens"), "{e}");
        let e = T5Config::parse("[1]", "c").unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        assert!(matches!(T5Config::parse("{", "c"), Err(TokenizerError::Json { .. })));
    }
}
