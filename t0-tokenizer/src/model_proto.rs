//! Decoding SentencePiece's `ModelProto` (the `spiece.model` file).
//!
//! Only the fields a unigram tokenizer needs are read; every other field is skipped by wire
//! type, as protobuf requires. Hand-written (about 200 lines) rather than generated with
//! `prost`: the schema is tiny and fixed, and this keeps the crate free of build scripts and
//! proc-macro dependencies.
//!
//! Field numbers are those of `sentencepiece_model.proto`:
//! `ModelProto { pieces = 1; trainer_spec = 2; normalizer_spec = 3; }`,
//! `SentencePiece { piece = 1; score = 2; type = 3; }`,
//! `TrainerSpec { model_type = 3; byte_fallback = 35; unk_id = 40; bos_id = 41; eos_id = 42;
//! pad_id = 43; unk_surface = 44; unk_piece = 45; }`,
//! `NormalizerSpec { name = 1; precompiled_charsmap = 2; add_dummy_prefix = 3;
//! remove_extra_whitespaces = 4; escape_whitespaces = 5; }`.

use crate::error::TokenizerError;

/// The type of a piece (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece.
    Normal,
    /// The unknown piece (`<unk>`).
    Unknown,
    /// A control symbol (`<s>`, `</s>`, `<pad>`): never produced from text by sentencepiece.
    Control,
    /// A user-defined symbol, always kept whole.
    UserDefined,
    /// An unused piece.
    Unused,
    /// A byte piece `<0xXX>`.
    Byte,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone)]
pub struct SpPiece {
    /// The piece text, with `▁` (U+2581) standing for a space.
    pub piece: String,
    /// Its log-probability.
    pub score: f32,
    /// Its type.
    pub kind: PieceType,
}

/// The parts of `TrainerSpec` that matter when tokenizing.
#[derive(Debug, Clone)]
pub struct TrainerSpec {
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: i32,
    /// Id of the unknown piece.
    pub unk_id: i32,
    /// Id of `<s>` (-1: none).
    pub bos_id: i32,
    /// Id of `</s>` (-1: none).
    pub eos_id: i32,
    /// Id of `<pad>` (-1: none).
    pub pad_id: i32,
    /// Whether unknown characters become byte pieces.
    pub byte_fallback: bool,
    /// What sentencepiece prints for an unknown piece when decoding.
    pub unk_surface: String,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: 1,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            byte_fallback: false,
            unk_surface: " \u{2047} ".to_string(),
        }
    }
}

/// The parts of `NormalizerSpec` that matter when tokenizing.
#[derive(Debug, Clone)]
pub struct NormalizerSpec {
    /// Rule name, e.g. `nmt_nfkc`.
    pub name: String,
    /// The compiled normalisation rules (a double-array trie plus replacement strings).
    pub precompiled_charsmap: Vec<u8>,
    /// Whether a `▁` is put in front of the text.
    pub add_dummy_prefix: bool,
    /// Whether leading, trailing and repeated spaces are removed.
    pub remove_extra_whitespaces: bool,
    /// Whether spaces become `▁`.
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A decoded `spiece.model`.
#[derive(Debug, Clone, Default)]
pub struct ModelProto {
    /// The vocabulary, in id order.
    pub pieces: Vec<SpPiece>,
    /// Training options that also govern tokenization.
    pub trainer_spec: TrainerSpec,
    /// Normalisation options.
    pub normalizer_spec: NormalizerSpec,
}

impl ModelProto {
    /// Decodes a `ModelProto` from its serialized bytes. `origin` names the source in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, TokenizerError> {
        let mut model = ModelProto::default();
        let mut r = Reader::new(bytes, 0, origin);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, WIRE_LEN) => {
                    let (sub, base) = r.bytes()?;
                    model.pieces.push(parse_piece(sub, base, origin)?);
                }
                (2, WIRE_LEN) => {
                    let (sub, base) = r.bytes()?;
                    parse_trainer(sub, base, origin, &mut model.trainer_spec)?;
                }
                (3, WIRE_LEN) => {
                    let (sub, base) = r.bytes()?;
                    parse_normalizer(sub, base, origin, &mut model.normalizer_spec)?;
                }
                _ => r.skip(wire)?,
            }
        }
        if model.pieces.is_empty() {
            return Err(TokenizerError::invalid(
                origin,
                "pieces",
                "[]",
                "the model has no pieces (is this a sentencepiece model?)",
            ));
        }
        Ok(model)
    }
}

fn parse_piece(bytes: &[u8], base: usize, origin: &str) -> Result<SpPiece, TokenizerError> {
    let mut r = Reader::new(bytes, base, origin);
    let mut piece = SpPiece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let at = r.offset();
                let (s, _) = r.bytes()?;
                piece.piece = String::from_utf8(s.to_vec()).map_err(|_| r.error_at(at, "piece text is not UTF-8"))?;
            }
            (2, WIRE_FIXED32) => piece.score = f32::from_le_bytes(r.fixed32()?),
            (3, WIRE_VARINT) => {
                let at = r.offset();
                let v = r.varint()?;
                piece.kind =
                    PieceType::from_proto(v).ok_or_else(|| r.error_at(at, format!("unknown piece type {v}")))?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(piece)
}

fn parse_trainer(bytes: &[u8], base: usize, origin: &str, spec: &mut TrainerSpec) -> Result<(), TokenizerError> {
    let mut r = Reader::new(bytes, base, origin);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (3, WIRE_VARINT) => spec.model_type = r.varint()? as i32,
            (35, WIRE_VARINT) => spec.byte_fallback = r.varint()? != 0,
            // int32 fields: negative values are sign-extended 64-bit varints; truncating to
            // 32 bits is what protobuf does.
            (40, WIRE_VARINT) => spec.unk_id = r.varint()? as i32,
            (41, WIRE_VARINT) => spec.bos_id = r.varint()? as i32,
            (42, WIRE_VARINT) => spec.eos_id = r.varint()? as i32,
            (43, WIRE_VARINT) => spec.pad_id = r.varint()? as i32,
            (44, WIRE_LEN) => {
                let (s, _) = r.bytes()?;
                spec.unk_surface = String::from_utf8_lossy(s).into_owned();
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn parse_normalizer(bytes: &[u8], base: usize, origin: &str, spec: &mut NormalizerSpec) -> Result<(), TokenizerError> {
    let mut r = Reader::new(bytes, base, origin);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                let (s, _) = r.bytes()?;
                spec.name = String::from_utf8_lossy(s).into_owned();
            }
            (2, WIRE_LEN) => spec.precompiled_charsmap = r.bytes()?.0.to_vec(),
            (3, WIRE_VARINT) => spec.add_dummy_prefix = r.varint()? != 0,
            (4, WIRE_VARINT) => spec.remove_extra_whitespaces = r.varint()? != 0,
            (5, WIRE_VARINT) => spec.escape_whitespaces = r.varint()? != 0,
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A cursor over protobuf wire format. `base` is the offset of `buf` in the whole file, so
/// errors point at the right byte.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    origin: &'a str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, origin: &'a str) -> Self {
        Reader { buf, pos: 0, base, origin }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn error_at(&self, offset: usize, reason: impl Into<String>) -> TokenizerError {
        TokenizerError::Protobuf { origin: self.origin.to_string(), offset, reason: reason.into() }
    }

    fn varint(&mut self) -> Result<u64, TokenizerError> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error_at(start, "truncated varint"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error_at(start, "varint longer than 10 bytes"))
    }

    /// The next field number and wire type, or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u32, u8)>, TokenizerError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.offset();
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.error_at(at, format!("invalid field number {field}")));
        }
        Ok(Some((field as u32, (k & 7) as u8)))
    }

    fn take(&mut self, n: usize) -> Result<(&'a [u8], usize), TokenizerError> {
        let start = self.offset();
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.error_at(
                start,
                format!("field of {n} bytes runs past the end ({} bytes left)", self.buf.len() - self.pos),
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok((s, start))
    }

    /// A length-delimited field: its bytes and their offset in the file.
    fn bytes(&mut self) -> Result<(&'a [u8], usize), TokenizerError> {
        let at = self.offset();
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.error_at(at, "length overflows"))?;
        self.take(n)
    }

    fn fixed32(&mut self) -> Result<[u8; 4], TokenizerError> {
        let (s, _) = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn skip(&mut self, wire: u8) -> Result<(), TokenizerError> {
        let at = self.offset();
        match wire {
            WIRE_VARINT => {
                self.varint()?;
            }
            WIRE_FIXED64 => {
                self.take(8)?;
            }
            WIRE_LEN => {
                self.bytes()?;
            }
            WIRE_FIXED32 => {
                self.take(4)?;
            }
            w => return Err(self.error_at(at, format!("unsupported wire type {w}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = vec![0x0a];
        varint(text.len() as u64, &mut p);
        p.extend_from_slice(text.as_bytes());
        p.push(0x15);
        p.extend_from_slice(&score.to_le_bytes());
        p.push(0x18);
        varint(kind, &mut p);
        let mut out = vec![0x0a];
        varint(p.len() as u64, &mut out);
        out.extend(p);
        out
    }

    #[test]
    fn parses_pieces_and_specs() {
        let mut m = piece("<unk>", 0.0, 2);
        m.extend(piece("\u{2581}a", -1.5, 1));
        // trainer_spec { unk_id: 0, pad_id: -1 }
        let mut t = vec![];
        varint(40 << 3, &mut t);
        varint(0, &mut t);
        varint(43 << 3, &mut t);
        varint(u64::MAX, &mut t);
        m.push(0x12);
        varint(t.len() as u64, &mut m);
        m.extend(t);
        let p = ModelProto::parse(&m, "test").unwrap();
        assert_eq!(p.pieces.len(), 2);
        assert_eq!(p.pieces[1].piece, "\u{2581}a");
        assert_eq!(p.pieces[1].score, -1.5);
        assert_eq!(p.pieces[0].kind, PieceType::Unknown);
        assert_eq!(p.trainer_spec.pad_id, -1);
        assert_eq!(p.trainer_spec.unk_id, 0);
        assert!(p.normalizer_spec.add_dummy_prefix);
    }

    #[test]
    fn truncated_input_is_an_error_naming_the_offset() {
        let m = piece("hello", 0.0, 1);
        for cut in 1..m.len() {
            let err = ModelProto::parse(&m[..cut], "spiece.model").unwrap_err();
            assert!(matches!(err, TokenizerError::Protobuf { .. }), "cut {cut}: {err}");
            assert!(err.to_string().starts_with("spiece.model: malformed protobuf at byte"));
        }
    }

    #[test]
    fn empty_input_has_no_pieces() {
        let err = ModelProto::parse(&[], "x").unwrap_err();
        assert!(err.to_string().contains("no pieces"), "{err}");
    }
}
