//! Signed modules: an operator may require that a module be signed, in
//! minisign's format, by a key they trust (`require_signature`,
//! `trusted_keys`). Authors sign with the `minisign` tool; the host
//! verifies with `minisign-verify`, prehashed and legacy signatures alike.
//!
//! The check reads the same bytes that are then admitted and compiled, and
//! runs before the compiled-code cache is consulted: a module that is not
//! signed as required never reaches the compiler nor the cache.

use std::path::{Path, PathBuf};

use minisign_verify::{PublicKey, Signature};

/// Largest signature file read (a minisign signature is four lines; the
/// trusted comment is the only part of any length).
const MAX_SIGNATURE_BYTES: u64 = 64 << 10;

/// Why a module's signature is refused. Each case says which it is.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "it is not signed: the signature file {} is missing (require_signature = true; sign it with `minisign -S -m <module>`)",
        .path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read its signature file {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("its signature file {} is malformed: {why}", .path.display())]
    Malformed { path: PathBuf, why: String },
    #[error("it is signed by key {key_id}, which is not a trusted key (trusted_keys: {trusted})")]
    UntrustedKey { key_id: String, trusted: String },
    #[error(
        "it does not match its signature by trusted key {key_id}: the module (or the signature's trusted comment) was changed after signing"
    )]
    Tampered { key_id: String },
}

/// A public key the operator trusts, with its minisign key id.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    id: String,
    key: PublicKey,
}

impl TrustedKey {
    /// A key as the configuration names it: a minisign public key in
    /// base64 (the second line of a `.pub` file, `RW...`), or the path to
    /// a minisign `.pub` file (`resolve` places a relative one).
    pub fn read(spec: &str, resolve: impl Fn(&Path) -> PathBuf) -> Result<TrustedKey, String> {
        let spec = spec.trim();
        if let Some(id) = key_id(spec) {
            let key = PublicKey::from_base64(spec)
                .map_err(|e| format!("{spec:?} is not a minisign public key: {e}"))?;
            return Ok(TrustedKey { id, key });
        }
        let path = resolve(Path::new(spec));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{spec:?} is neither a minisign public key (base64) nor a readable key file ({}: {e})",
                path.display()
            )
        })?;
        let line = text.lines().nth(1).unwrap_or_default().trim();
        let (Some(id), Ok(key)) = (key_id(line), PublicKey::decode(&text)) else {
            return Err(format!(
                "{} is not a minisign public key file",
                path.display()
            ));
        };
        Ok(TrustedKey { id, key })
    }

    /// The key id minisign prints (hex).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What an operator requires of a module's signature.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The signature file.
    pub signature: PathBuf,
    /// At least one.
    pub keys: Vec<TrustedKey>,
}

/// A signature that held: by which key, and its trusted comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub trusted_comment: String,
}

impl Trust {
    /// `module` (its bytes as read) checked against its signature file.
    pub fn verify(&self, module: &[u8]) -> Result<Verified, SignatureError> {
        let path = &self.signature;
        let sig = read_signature(path)?;
        let key_id = signature_key_id(&sig.1).ok_or_else(|| SignatureError::Malformed {
            path: path.clone(),
            why: "no key id".into(),
        })?;
        let Some(trusted) = self.keys.iter().find(|k| k.id == key_id) else {
            let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
            return Err(SignatureError::UntrustedKey {
                key_id,
                trusted: ids.join(", "),
            });
        };
        match trusted.key.verify(module, &sig.0, true) {
            Ok(()) => Ok(Verified {
                key_id,
                trusted_comment: sig.0.trusted_comment().to_string(),
            }),
            Err(minisign_verify::Error::InvalidSignature) => {
                Err(SignatureError::Tampered { key_id })
            }
            Err(e) => Err(SignatureError::Malformed {
                path: path.clone(),
                why: e.to_string(),
            }),
        }
    }
}

/// The signature at `path`, decoded, with its text.
pub fn read_signature(path: &Path) -> Result<(Signature, String), SignatureError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SignatureError::Missing { path: path.into() },
        _ => SignatureError::Unreadable {
            path: path.into(),
            source,
        },
    })?;
    let mut bytes = Vec::new();
    let read = file.take(MAX_SIGNATURE_BYTES + 1).read_to_end(&mut bytes);
    read.map_err(|source| SignatureError::Unreadable {
        path: path.into(),
        source,
    })?;
    let malformed = |why: &str| SignatureError::Malformed {
        path: path.into(),
        why: why.into(),
    };
    if bytes.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err(malformed("larger than 64 KiB"));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text"))?;
    let sig = Signature::decode(&text).map_err(|e| malformed(&e.to_string()))?;
    Ok((sig, text))
}

/// The default signature file of a module: its path with `.minisig`
/// appended, as `minisign -S` writes it.
pub fn default_signature_path(module: &Path) -> PathBuf {
    let mut s = module.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// The key id of a signature (its second line), as minisign prints it.
pub fn signature_key_id(text: &str) -> Option<String> {
    let line = text.lines().nth(1)?.trim();
    let bin = base64_decode(line).filter(|b| b.len() == 74)?;
    Some(hex_id(&bin[2..10]))
}

/// The key id of a base64 public key (42 bytes: algorithm, id, key).
fn key_id(b64: &str) -> Option<String> {
    let bin = base64_decode(b64).filter(|b| b.len() == 42)?;
    Some(hex_id(&bin[2..10]))
}

/// minisign prints a key id as the little-endian number its 8 bytes are,
/// in hex (as in a `.pub` file's comment, `minisign public key <id>`).
fn hex_id(bytes: &[u8]) -> String {
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    format!("{:X}", u64::from_le_bytes(n))
}

/// Standard base64 with padding; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, chunk) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | u32::from(value(c)?);
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_padding_only() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode("TQ"), None);
        assert_eq!(base64_decode("T==="), None);
        assert_eq!(base64_decode("TQ==TWFu"), None);
        assert_eq!(base64_decode("TW!u"), None);
    }

    #[test]
    fn a_key_id_reads_as_minisign_prints_it() {
        // 'E','d', then the id bytes 01..08, then 32 key bytes.
        let mut bin = vec![b'E', b'd', 1, 2, 3, 4, 5, 6, 7, 0];
        bin.extend([0u8; 32]);
        let b64 = encode(&bin);
        assert_eq!(key_id(&b64).unwrap(), "7060504030201");
        // A key minisign made, and the id its .pub file's comment names.
        let id = key_id("RWShkuu9fkcfAF1QSzDnDYL9MYRgZrSkpmWBlTmA8JDPMHboh9Si1XRP");
        assert_eq!(id.unwrap(), "1F477EBDEB92A1");
        assert!(key_id("RWQ").is_none());
    }

    #[test]
    fn a_trusted_key_is_base64_or_a_key_file() {
        let b64 = "RWShkuu9fkcfAF1QSzDnDYL9MYRgZrSkpmWBlTmA8JDPMHboh9Si1XRP";
        let key = TrustedKey::read(b64, |p| p.to_path_buf()).unwrap();
        assert_eq!(key.id(), "1F477EBDEB92A1");
        let dir = std::env::temp_dir().join(format!("rulebox-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = "untrusted comment: minisign public key 1F477EBDEB92A1\n";
        std::fs::write(dir.join("k.pub"), format!("{file}{b64}\n")).unwrap();
        let key = TrustedKey::read("k.pub", |p| dir.join(p)).unwrap();
        assert_eq!(key.id(), "1F477EBDEB92A1");
        let e = TrustedKey::read("absent.pub", |p| dir.join(p)).unwrap_err();
        assert!(e.contains("neither a minisign public key"), "{e}");
        std::fs::write(dir.join("bad.pub"), "one line\n").unwrap();
        let e = TrustedKey::read("bad.pub", |p| dir.join(p)).unwrap_err();
        assert!(e.contains("is not a minisign public key file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_malformed_signature_says_so() {
        let dir = std::env::temp_dir().join(format!("rulebox-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = read_signature(&dir.join("absent.minisig")).err().unwrap();
        assert!(
            matches!(missing, SignatureError::Missing { .. }),
            "{missing}"
        );
        let bad = dir.join("bad.minisig");
        std::fs::write(&bad, "untrusted comment: x\nnot base64\n").unwrap();
        let e = read_signature(&bad).err().unwrap();
        assert!(matches!(e, SignatureError::Malformed { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn encode(bin: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in bin.chunks(3) {
            let n = c.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - c.len()));
            for i in 0..=c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
            s.extend(std::iter::repeat_n('=', 3 - c.len()));
        }
        s
    }
}
