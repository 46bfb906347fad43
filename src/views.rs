//! The on-disk store of inventory views by git blob: what lets a review of a large repository
//! parse only the blobs it has not seen.
//!
//! A review judges the files a change touches in full, and every other file only through the
//! cross-object rules, which read its inventory view ([`crate::audit::ViewShape`]). A view
//! depends on the blob's bytes and nothing else a change controls: not its path (files are
//! parsed without one, every path-dependent step comes after the lookup), only the parse limits
//! and the kinds the policy's cross-object rules keep whole (the *view digest*) and on the
//! engine that made it (the *engine id*: version and a digest of the sources and rules it was
//! built from). Reviews run in child processes, so the store is a folder they all can read:
//!
//! - one pack per repository, engine id and view digest:
//!   `DIR/<engine id>/<view digest>/<repository>.pack`, so two engines or two policies never
//!   read each other's entries (the header names both again and is checked);
//! - a pack is written whole to a temporary file and renamed into place: a reader sees the old
//!   pack or the new one, never half of one; concurrent writers leave one of theirs;
//! - a pack ends with the SHA-256 of everything before it, checked on every read: a torn,
//!   truncated or altered pack is ignored (the review parses instead) and replaced;
//! - the folder is bounded in bytes: after a write, the packs read least recently are removed
//!   until the rest fit (only the store's own files are ever counted or removed).
//!
//! A changed file is stored whole (the next push of the same change judges it whole again),
//! every other one as its view; each entry also records its blob's size, which the review's
//! tree listing then need not read from git.
//!
//! Entries are `postcard` encodings of the parsed documents (spans included), decoded only for
//! the blobs a review asks for.

use foldhash::{HashMap, HashMapExt};
use std::io::Write;
use std::path::{Path, PathBuf};

use git2::Oid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Policy;
use crate::git::{Listing, Subtree, TreeFile};
use crate::manifest::{Header, ManifestFile, SkipReason};
use crate::yaml::{ParsedDocument, Weight};

const MAGIC: &[u8; 8] = b"KWVIEWS2";
/// The head of a stored tree listing.
const LISTING_MAGIC: &[u8; 8] = b"KWLIST02";
/// How a pack being written is named until it is renamed into place.
const TEMP_PREFIX: &str = ".kubeward-pack-";

/// The store's default size: the packs of about thirty repositories of 25,000 documents.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
const DIGEST: usize = 32;
const OID: usize = 20;
/// An entry's head: blob id, blob size (u64), payload length (u32).
const ENTRY_HEAD: usize = OID + 8 + 4;

/// Where the store is and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// The engine that made a view: this build of kubeward.
pub fn engine_id() -> [u8; DIGEST] {
    digest(&[
        env!("CARGO_PKG_VERSION").as_bytes(),
        env!("KUBEWARD_SOURCE_ID").as_bytes(),
    ])
}

/// What of a policy a view depends on: how files are parsed and which kinds its cross-object
/// rules keep whole. Any other policy change (severities, exemptions, ignored paths) applies
/// after the lookup, so it keeps the store warm.
pub fn view_digest(policy: &Policy) -> [u8; DIGEST] {
    let mut parts: Vec<String> = vec![
        format!("{:?}", policy.yaml_limits),
        policy.max_file_size.to_string(),
    ];
    parts.extend(crate::audit::ViewShape::new(policy).whole_kinds());
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    digest(&bytes)
}

fn digest(parts: &[&[u8]]) -> [u8; DIGEST] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// One blob as stored: its view, or its whole parse (a file a change touched, which the
/// next push of the change judges whole again).
#[derive(Deserialize)]
struct Stored<'a> {
    whole: bool,
    #[serde(borrow)]
    summary: Summary<'a>,
    content: Result<Vec<ParsedDocument>, SkipReason>,
}

/// [`Stored`], borrowed for writing (the same encoding).
#[derive(Serialize)]
struct StoredRef<'f> {
    whole: bool,
    summary: Summary<'f>,
    content: Result<&'f [ParsedDocument], SkipReason>,
}

/// What an entry says before its trees: enough for a review to count the file against its
/// budgets and to leave it settled (`Touched::settles_header`) without decoding them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary<'a> {
    pub weight: Weight,
    /// Each object's header; `None` when the file's content did not parse.
    #[serde(borrow)]
    pub objects: Option<Vec<Header<'a>>>,
}

/// The head of an entry: [`Stored`]'s first fields.
#[derive(Deserialize)]
struct Prefix<'a> {
    /// Decoded to reach the summary: postcard reads fields in order.
    _whole: bool,
    #[serde(borrow)]
    summary: Summary<'a>,
}

/// How a stored blob is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Its inventory view.
    View,
    /// Its whole parse.
    Whole,
}

/// The views a review may use, read from the store.
#[derive(Default)]
pub struct Pack {
    bytes: Vec<u8>,
    entries: HashMap<Oid, Entry>,
}

/// Where an entry's payload is, and the size of its blob.
struct Entry {
    payload: std::ops::Range<usize>,
    blob_size: u64,
}

impl Pack {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, oid: &Oid) -> bool {
        self.entries.contains_key(oid)
    }

    /// Whether the pack has `oid` whole: the entry's first byte is [`Stored::whole`] (postcard
    /// writes a bool as one byte, fields in order).
    pub fn has_whole(&self, oid: &Oid) -> bool {
        self.entries
            .get(oid)
            .and_then(|e| self.bytes.get(e.payload.start))
            .is_some_and(|&first| first == 1)
    }

    /// The size of every blob the pack holds: a review need not read them from git again.
    pub fn blob_sizes(&self) -> impl Iterator<Item = (Oid, u64)> + '_ {
        self.entries.iter().map(|(oid, e)| (*oid, e.blob_size))
    }

    /// The stored payload of `oid`, to be written again as it is.
    pub fn raw(&self, oid: &Oid) -> Option<&[u8]> {
        self.bytes.get(self.entries.get(oid)?.payload.clone())
    }

    /// The summary of `oid`'s entry, its trees left undecoded.
    pub fn summary(&self, oid: &Oid) -> Option<Summary<'_>> {
        let payload = self.bytes.get(self.entries.get(oid)?.payload.clone())?;
        let (prefix, _trees) = postcard::take_from_bytes::<Prefix>(payload).ok()?;
        Some(prefix.summary)
    }

    /// `oid` as stored, a file without a path; `None` when the pack has none or its entry does
    /// not decode (then the blob is parsed).
    pub fn get(&self, oid: &Oid) -> Option<(ManifestFile, Kept)> {
        let entry = self.entries.get(oid)?;
        let stored: Stored = postcard::from_bytes(self.bytes.get(entry.payload.clone())?).ok()?;
        let weight = stored.summary.weight;
        let file = match stored.content {
            Ok(documents) => ManifestFile::from_documents("", documents, weight),
            Err(reason) => ManifestFile {
                weight,
                ..ManifestFile::skipped("", reason)
            },
        };
        Some((
            file,
            if stored.whole {
                Kept::Whole
            } else {
                Kept::View
            },
        ))
    }
}

/// The store of one repository under one engine and one view digest.
pub struct Store {
    settings: StoreSettings,
    pack: PathBuf,
    /// The last base commit's tree listing, beside the pack.
    listing: PathBuf,
    header: Vec<u8>,
}

/// A stored [`Listing`]: paths borrowed from the file's bytes. Sizes are not kept: a blob's
/// is read in the clone that uses the listing (one it lacks has none), mostly from the pack.
#[derive(Serialize, Deserialize)]
struct StoredListing<'a> {
    #[serde(borrow)]
    files: Vec<(&'a str, [u8; OID])>,
    /// Id, first and end file, cut, subtrees below.
    subtrees: Vec<([u8; OID], u64, u64, u64, u64)>,
}

impl Store {
    pub fn new(settings: &StoreSettings, repository: &Path, policy: &Policy) -> Store {
        Store::with_engine(settings, repository, policy, engine_id())
    }

    /// [`Store::new`] as another engine would see it.
    fn with_engine(
        settings: &StoreSettings,
        repository: &Path,
        policy: &Policy,
        engine: [u8; DIGEST],
    ) -> Store {
        let view = view_digest(policy);
        let repository = hex::encode(&digest(&[repository.as_os_str().as_encoded_bytes()])[..12]);
        let pack = settings
            .dir
            .join(hex::encode(&engine[..12]))
            .join(hex::encode(&view[..12]))
            .join(format!("{repository}.pack"));
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&engine);
        header.extend_from_slice(&view);
        Store {
            settings: settings.clone(),
            listing: pack.with_extension("listing"),
            pack,
            header,
        }
    }

    /// The pack as last written, or an empty one (none yet, or not intact: the reason is
    /// returned beside it).
    pub fn read(&self) -> (Pack, Option<String>) {
        let bytes = match std::fs::read(&self.pack) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Pack::default(), None),
            Err(e) => return (Pack::default(), Some(format!("unreadable: {e}"))),
        };
        match self.index(&bytes) {
            Ok(entries) => {
                touch(&self.pack);
                (Pack { bytes, entries }, None)
            }
            Err(why) => (Pack::default(), Some(why.to_owned())),
        }
    }

    /// The tree listing last written, if there is one and it is intact. It holds only what git
    /// objects say (content-addressed), so it is never stale, only less useful.
    pub fn read_listing(&self) -> Option<Listing> {
        let bytes = std::fs::read(&self.listing).ok()?;
        let body = checked_body(&bytes)
            .ok()?
            .strip_prefix(LISTING_MAGIC.as_slice())?;
        let stored: StoredListing<'_> = postcard::from_bytes(body).ok()?;
        let oid = |bytes: &[u8; OID]| Oid::from_bytes(bytes).ok();
        let files = stored
            .files
            .iter()
            .map(|(path, blob)| {
                Some(TreeFile {
                    path: (*path).to_owned(),
                    blob: oid(blob)?,
                    // Unknown: read again where it is used.
                    size: 0,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let size = |n: u64| usize::try_from(n).ok();
        let subtrees = stored
            .subtrees
            .iter()
            .map(|(id, start, end, cut, below)| {
                Some(Subtree {
                    oid: oid(id)?,
                    start: size(*start)?,
                    end: size(*end)?,
                    cut: size(*cut)?,
                    below: size(*below)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let listing = Listing::from_parts(files, subtrees).ok()?;
        touch(&self.listing);
        Some(listing)
    }

    /// Writes `listing` in place of the stored one, atomically, within the store's bytes.
    pub fn write_listing(&self, listing: &Listing) -> std::io::Result<()> {
        let stored = StoredListing {
            files: listing
                .files
                .iter()
                .map(|f| (f.path.as_str(), oid_bytes(f.blob)))
                .collect(),
            subtrees: listing
                .subtrees()
                .iter()
                .map(|s| {
                    let n = |v: usize| v as u64;
                    (oid_bytes(s.oid), n(s.start), n(s.end), n(s.cut), n(s.below))
                })
                .collect(),
        };
        let bytes =
            postcard::to_extend(&stored, LISTING_MAGIC.to_vec()).map_err(std::io::Error::other)?;
        self.write_checked(&self.listing, |out| {
            out.write_all(&bytes)?;
            Ok(true)
        })
    }

    fn index(&self, bytes: &[u8]) -> Result<HashMap<Oid, Entry>, &'static str> {
        let body = checked_body(bytes)?;
        let rest = body
            .strip_prefix(self.header.as_slice())
            .ok_or("another engine's or policy's pack")?;
        let mut at = self.header.len();
        let mut entries = HashMap::new();
        let mut rest = rest;
        while !rest.is_empty() {
            let head = rest.get(..ENTRY_HEAD).ok_or("truncated entry")?;
            let oid = Oid::from_bytes(&head[..OID]).map_err(|_| "bad blob id")?;
            let mut size = [0u8; 8];
            size.copy_from_slice(&head[OID..OID + 8]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&head[OID + 8..]);
            let len = u32::from_le_bytes(len) as usize;
            let start = at + ENTRY_HEAD;
            let end = start.checked_add(len).ok_or("bad entry length")?;
            if end > body.len() {
                return Err("truncated entry");
            }
            let entry = Entry {
                payload: start..end,
                blob_size: u64::from_le_bytes(size),
            };
            entries.insert(oid, entry);
            at = end;
            rest = &body[end..];
        }
        Ok(entries)
    }

    /// Writes `entries` (each blob's id and size, and its [`encode`]d payload) as the
    /// repository's pack, atomically, then keeps the store within its bytes. A pack larger
    /// than the whole store is not written.
    pub fn write<'e>(
        &self,
        entries: impl Iterator<Item = (Oid, u64, &'e [u8])>,
    ) -> std::io::Result<()> {
        let max_bytes = self.settings.max_bytes;
        self.write_checked(&self.pack, |out| {
            out.write_all(&self.header)?;
            for (oid, blob_size, payload) in entries {
                let Ok(len) = u32::try_from(payload.len()) else {
                    continue;
                };
                out.write_all(oid.as_bytes())?;
                out.write_all(&blob_size.to_le_bytes())?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(payload)?;
                if out.written + DIGEST as u64 > max_bytes {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Writes the stored file at `path` atomically: what `body` writes, then its SHA-256, in a
    /// temporary file renamed into place; then keeps the store within its bytes. Nothing is
    /// written when `body` gives up (`Ok(false)`) or the file would outgrow the whole store.
    fn write_checked(
        &self,
        path: &Path,
        body: impl FnOnce(
            &mut Hashed<std::io::BufWriter<tempfile::NamedTempFile>>,
        ) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.settings.dir);
        std::fs::create_dir_all(dir)?;
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        // Streamed: what is written is never a second time in memory.
        let mut out = Hashed {
            out: std::io::BufWriter::new(file),
            sum: Sha256::new(),
            written: 0,
        };
        if !body(&mut out)? || out.written + DIGEST as u64 > self.settings.max_bytes {
            // Dropping the temporary file removes it.
            return Ok(());
        }
        let sum = out.sum.finalize();
        let mut file = out.out.into_inner().map_err(|e| e.into_error())?;
        file.write_all(&sum)?;
        file.persist(path).map_err(|e| e.error)?;
        evict(&self.settings.dir, self.settings.max_bytes, path)
    }
}

/// Marks a stored file as read now: the files read least recently are evicted first.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// What comes before a stored file's SHA-256, if it matches.
fn checked_body(bytes: &[u8]) -> Result<&[u8], &'static str> {
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(DIGEST).ok_or("truncated")?);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch");
    }
    Ok(body)
}

fn oid_bytes(oid: Oid) -> [u8; OID] {
    let mut bytes = [0; OID];
    bytes.copy_from_slice(oid.as_bytes());
    bytes
}

/// A writer that hashes and counts what it writes.
struct Hashed<W> {
    out: W,
    sum: Sha256,
    written: u64,
}

impl<W: Write> Hashed<W> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.sum.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// A blob's entry payload: its view, or its whole parse.
pub fn encode(file: &ManifestFile, kept: Kept) -> Result<Vec<u8>, postcard::Error> {
    let stored = StoredRef {
        whole: kept == Kept::Whole,
        summary: Summary {
            weight: file.weight,
            objects: file
                .content
                .is_ok()
                .then(|| file.object_headers().iter().map(|o| o.header()).collect()),
        },
        content: file
            .content
            .as_ref()
            .map(|docs| docs.as_slice())
            .map_err(|r| *r),
    };
    postcard::to_stdvec(&stored)
}

/// Removes the packs read or written least recently until the store holds at most `max_bytes`;
/// `keep` (just written) stays. Only the store's own files are looked at (packs and temporary
/// files two folders down, `<engine>/<view digest>/`): a store set in a folder that holds
/// anything else never touches it. Temporary files of writers that died are removed too.
fn evict(dir: &Path, max_bytes: u64, keep: &Path) -> std::io::Result<()> {
    let mut packs = Vec::new();
    let subfolders = |folder: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    };
    for engine in subfolders(dir) {
        for view in subfolders(&engine) {
            for entry in std::fs::read_dir(&view).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let age = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(TEMP_PREFIX) {
                    if age.elapsed().is_ok_and(|a| a.as_secs() > 3600) {
                        let _ = std::fs::remove_file(&path);
                    }
                } else if path
                    .extension()
                    .is_some_and(|e| e == "pack" || e == "listing")
                {
                    packs.push((age, meta.len(), path));
                }
            }
        }
    }
    let mut total: u64 = packs.iter().map(|(_, len, _)| len).sum();
    packs.sort();
    for (_, len, path) in packs {
        if total <= max_bytes {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Registry;
    use crate::yaml::Limits;

    fn policy() -> Policy {
        Policy::defaults(&Registry::builtin().expect("built-in rules"))
    }

    fn file(text: &str) -> ManifestFile {
        ManifestFile::parse("", text, Limits::default())
    }

    fn settings(dir: &Path, max_bytes: u64) -> StoreSettings {
        StoreSettings {
            dir: dir.to_path_buf(),
            max_bytes,
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: p}}\nspec:\n  containers: [{name: c, image: i}]\n";

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).expect("an id")
    }

    impl Store {
        fn put(&self, files: &[(Oid, u64, &ManifestFile, Kept)]) -> std::io::Result<()> {
            let payloads: Vec<(Oid, u64, Vec<u8>)> = files
                .iter()
                .map(|(oid, size, file, kept)| (*oid, *size, encode(file, *kept).expect("encoded")))
                .collect();
            self.write(payloads.iter().map(|(o, s, p)| (*o, *s, p.as_slice())))
        }
    }

    fn store_in(dir: &Path, policy: &Policy) -> Store {
        Store::new(&settings(dir, 1 << 20), Path::new("/repo.git"), policy)
    }

    #[test]
    fn a_pack_round_trips_what_was_stored_and_how() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = policy();
        let store = store_in(dir.path(), &policy);
        let (a, b) = (file(POD), file("not: [valid"));
        store
            .put(&[(oid(1), 10, &a, Kept::Whole), (oid(2), 20, &b, Kept::View)])
            .expect("written");
        let (pack, problem) = store.read();
        assert_eq!(problem, None);
        assert_eq!(pack.len(), 2);
        assert!(pack.has_whole(&oid(1)) && !pack.has_whole(&oid(2)));
        let (back, kept) = pack.get(&oid(1)).expect("stored");
        assert_eq!(kept, Kept::Whole);
        let docs = |f: &ManifestFile| format!("{:?}", f.content.as_ref().map(|d| d.as_slice()));
        assert_eq!(docs(&back), docs(&a), "spans and all");
        assert_eq!(back.weight, a.weight);
        assert!(pack.get(&oid(3)).is_none());
        // The summary says what the decoded file does, without its trees.
        let summary = pack.summary(&oid(1)).expect("summarised");
        assert_eq!(summary.weight, a.weight);
        let headers: Vec<Header<'_>> = back.object_headers().iter().map(|o| o.header()).collect();
        assert_eq!(summary.objects.as_deref(), Some(headers.as_slice()));
        assert_eq!(headers.len(), 1);
        assert_eq!((headers[0].kind, headers[0].namespace), ("Pod", None));

        let mut sizes: Vec<(Oid, u64)> = pack.blob_sizes().collect();
        sizes.sort();
        assert_eq!(sizes, [(oid(1), 10), (oid(2), 20)]);
        // Entries written again from their stored payloads make the same pack.
        let before = std::fs::read(&store.pack).expect("pack");
        let again = [oid(1), oid(2)].map(|o| {
            (
                o,
                if o == oid(1) { 10 } else { 20 },
                pack.raw(&o).expect("stored"),
            )
        });
        store.write(again.into_iter()).expect("written");
        assert_eq!(std::fs::read(&store.pack).expect("pack"), before);

        let skipped = ManifestFile::skipped("", SkipReason::Binary);
        store
            .put(&[(oid(4), 1, &skipped, Kept::View)])
            .expect("written");
        let summary = store.read().0.summary(&oid(4)).map(|s| s.objects.is_none());
        assert_eq!(summary, Some(true), "no content: nothing may settle it");
    }

    #[test]
    fn a_damaged_or_foreign_pack_is_never_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = policy();
        let store = store_in(dir.path(), &policy);
        let pod = file(POD);
        store
            .put(&[(oid(1), 10, &pod, Kept::View)])
            .expect("written");
        let mut bytes = std::fs::read(&store.pack).expect("pack");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&store.pack, &bytes).expect("damaged");
        let (pack, problem) = store.read();
        assert!(pack.is_empty());
        assert_eq!(problem.as_deref(), Some("checksum mismatch"));
        std::fs::write(&store.pack, &bytes[..10]).expect("truncated");
        assert!(store.read().0.is_empty());

        // Another engine's pack, even moved to this engine's place, is not read.
        let other = Store::with_engine(
            &settings(dir.path(), 1 << 20),
            Path::new("/repo.git"),
            &policy,
            [7; DIGEST],
        );
        assert_ne!(other.pack, store.pack, "engines keep apart");
        other
            .put(&[(oid(1), 10, &pod, Kept::View)])
            .expect("written");
        std::fs::copy(&other.pack, &store.pack).expect("copied");
        let (pack, problem) = store.read();
        assert!(pack.is_empty());
        assert_eq!(
            problem.as_deref(),
            Some("another engine's or policy's pack")
        );
        assert_eq!(other.read().0.len(), 1, "its own engine reads it");
    }

    fn listing() -> Listing {
        let file = |path: &str, n: u8, size: usize| TreeFile {
            path: path.to_owned(),
            blob: oid(n),
            size,
        };
        let files = vec![
            file("a.yaml", 1, 10),
            file("apps/b.yaml", 2, 0),
            file("apps/c.yaml", 3, 30),
        ];
        let subtrees = vec![
            Subtree {
                oid: oid(9),
                start: 0,
                end: 3,
                cut: 0,
                below: 1,
            },
            Subtree {
                oid: oid(8),
                start: 1,
                end: 3,
                cut: 5,
                below: 0,
            },
        ];
        Listing::from_parts(files, subtrees).expect("a listing a walk makes")
    }

    fn parts(listing: &Listing) -> String {
        format!("{:?} {:?}", listing.files, listing.subtrees())
    }

    #[test]
    fn a_tree_listing_round_trips_and_a_damaged_or_impossible_one_is_not_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = policy();
        let store = store_in(dir.path(), &policy);
        assert!(store.read_listing().is_none(), "none written yet");
        let written = listing();
        store.write_listing(&written).expect("written");
        let back = store.read_listing().expect("read back");
        let mut unsized_written = written.clone();
        unsized_written.files.iter_mut().for_each(|f| f.size = 0);
        assert_eq!(
            parts(&back),
            parts(&unsized_written),
            "all but the sizes, which this clone reads"
        );
        assert_eq!(back.root(), Some(oid(9)));

        let bytes = std::fs::read(&store.listing).expect("listing");
        let mut damaged = bytes.clone();
        damaged[bytes.len() / 2] ^= 1;
        std::fs::write(&store.listing, &damaged).expect("damaged");
        assert!(store.read_listing().is_none(), "checksum mismatch");
        std::fs::write(&store.listing, &bytes[..5]).expect("truncated");
        assert!(store.read_listing().is_none(), "truncated");

        // Intact bytes that no walk could make are refused: a subtree's files or subtrees past
        // the end, paths that are not relative paths of named components.
        let write_stored = |path: &str, subtree: ([u8; OID], u64, u64, u64, u64)| {
            let mut bytes = postcard::to_extend(
                &StoredListing {
                    files: vec![(path, oid_bytes(oid(1)))],
                    subtrees: vec![subtree],
                },
                LISTING_MAGIC.to_vec(),
            )
            .expect("encoded");
            let sum = Sha256::digest(&bytes);
            bytes.extend_from_slice(&sum);
            std::fs::write(&store.listing, &bytes).expect("written");
        };
        write_stored("a.yaml", (oid_bytes(oid(9)), 0, 1, 0, 0));
        assert!(store.read_listing().is_some(), "a listing a walk makes");
        for (path, subtree) in [
            ("a.yaml", (oid_bytes(oid(9)), 0, 2, 0, 0)),
            ("a.yaml", (oid_bytes(oid(9)), 0, 1, 0, u64::MAX)),
            ("../a.yaml", (oid_bytes(oid(9)), 0, 1, 0, 0)),
            ("/etc/a.yaml", (oid_bytes(oid(9)), 0, 1, 0, 0)),
            ("apps//a.yaml", (oid_bytes(oid(9)), 0, 1, 0, 0)),
            ("apps/./a.yaml", (oid_bytes(oid(9)), 0, 1, 0, 0)),
        ] {
            write_stored(path, subtree);
            assert!(store.read_listing().is_none(), "{path} {subtree:?}");
        }

        // A listing over the store's bytes is not written at all.
        let small = Store::new(&settings(dir.path(), 16), Path::new("/other.git"), &policy);
        small.write_listing(&written).expect("skipped");
        assert!(!small.listing.exists());
    }

    #[test]
    fn the_store_keeps_within_its_bytes_dropping_the_least_recent_packs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = policy();
        let pod = file(POD);
        let one = {
            let probe = Store::new(&settings(dir.path(), 1 << 20), Path::new("/probe"), &policy);
            probe
                .put(&[(oid(1), 10, &pod, Kept::View)])
                .expect("written");
            let len = std::fs::metadata(&probe.pack).expect("pack").len();
            std::fs::remove_file(&probe.pack).expect("removed");
            len
        };
        let limit = one * 3;
        let stores: Vec<Store> = (0..5)
            .map(|i| {
                Store::new(
                    &settings(dir.path(), limit),
                    Path::new(&format!("/repo-{i}.git")),
                    &policy,
                )
            })
            .collect();
        for store in &stores {
            store
                .put(&[(oid(1), 10, &pod, Kept::View)])
                .expect("written");
            // Distinct modification times, oldest first.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let kept: Vec<bool> = stores.iter().map(|s| s.pack.exists()).collect();
        assert_eq!(kept, [false, false, true, true, true]);
        // What else the folder holds is not the store's: never counted, never removed.
        let foreign = dir.path().join("notes.txt");
        std::fs::write(&foreign, vec![b'x'; (limit * 4) as usize]).expect("written");
        let old_pack = stores[2].pack.with_extension("old");
        std::fs::write(&old_pack, b"not a pack").expect("written");
        stores[0]
            .put(&[(oid(1), 10, &pod, Kept::View)])
            .expect("written");
        assert!(foreign.exists() && old_pack.exists());
        // Too large for the store at all: not written.
        let tiny = Store::new(&settings(dir.path(), 10), Path::new("/big.git"), &policy);
        tiny.put(&[(oid(1), 10, &pod, Kept::View)])
            .expect("nothing to write");
        assert!(!tiny.pack.exists());
        let leftovers = std::fs::read_dir(tiny.pack.parent().expect("a folder"))
            .expect("folder")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .count();
        assert_eq!(leftovers, 0, "the abandoned temporary file is removed");
    }

    #[test]
    fn the_view_digest_follows_only_what_views_depend_on() {
        let registry = Registry::builtin().expect("built-in rules");
        let base = Policy::defaults(&registry);
        let mut severity = base.clone();
        for rule in &mut severity.rules {
            rule.severity = crate::audit::Severity::Danger;
        }
        let mut limits = base.clone();
        limits.yaml_limits.max_file_nodes = 20;
        let only: Vec<String> = vec!["hostPIDSet".into()];
        let fewer = Policy::build(&registry, None, Some(&only)).expect("policy");
        assert_eq!(view_digest(&base), view_digest(&severity));
        assert_ne!(view_digest(&base), view_digest(&limits));
        assert_ne!(
            view_digest(&base),
            view_digest(&fewer),
            "fewer rules keep fewer kinds whole"
        );
    }
}
