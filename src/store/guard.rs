//! Store errors and the damage guard: what the engine reports (or panics on) becomes a typed
//! `StoreError`; a damaged file is an error with its own exit code, never a panic, and never
//! silently replaced by a new vault.

use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError};

use super::file::FileStore;

/// Store failures. None of them carries record contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the vault store {0} is busy (another aivault process holds it); try again")]
    Busy(PathBuf),
    #[error("{0} is not an aivault store (or it is corrupted): {1}")]
    Foreign(PathBuf, String),
    #[error(
        "the vault store was written by a newer aivault (schema {found}, this binary knows {known}); upgrade aivault"
    )]
    NewerSchema { found: u32, known: u32 },
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("the vault file is damaged (a stored record does not decode: {0}); restore it from a backup")]
    Corrupt(String),
    #[error(
        "the vault file is damaged ({why}): {path}; restore it from a backup",
        path = .0.display(), why = .1
    )]
    Damaged(PathBuf, String),
    /// The PostgreSQL store cannot be reached or refused a statement (names the database, never
    /// its password).
    #[error("the vault database {0} failed: {1}")]
    Database(String, String),
    #[error("the target store is not empty; pass --force to replace what it holds")]
    NotEmpty,
}

impl StoreError {
    /// Whether this error means the file itself is damaged (a distinct exit code).
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Damaged(..) | StoreError::Corrupt(_))
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::Corrupted(why) => StoreError::Corrupt(why),
            redb::StorageError::Io(io)
                if matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
            {
                StoreError::Corrupt(io.to_string())
            }
            other => StoreError::Io(other.to_string()),
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(why) => StoreError::Corrupt(why),
            other => StoreError::Io(other.to_string()),
        }
    }
}

macro_rules! via_storage {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { redb::Error::from(e).into() }
        }
    )*};
}
via_storage!(redb::TransactionError, redb::TableError, redb::CommitError);

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Runs one store operation, turning a panic of the storage engine (which it can raise on a
/// damaged file) into `Damaged`. The panic message is not printed: the caller reports one line.
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    quiet_panics::install();
    let result = quiet_panics::silenced(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::Corrupt(why))) => Err(StoreError::Damaged(path.to_owned(), why)),
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the storage engine failed on it");
            Err(StoreError::Damaged(path.to_owned(), why.chars().take(200).collect()))
        }
    }
}

/// A panic hook that stays quiet on the threads inside `guarded` and defers to the previous
/// hook everywhere else (a bug elsewhere still prints its panic).
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
    }

    pub fn silenced<T>(f: impl FnOnce() -> T) -> T {
        let was = QUIET.with(|q| q.replace(true));
        let out = f();
        QUIET.with(|q| q.set(was));
        out
    }
}

/// Creates a new, initialised store without ever leaving an empty file at `path` (an empty file
/// there is damage, never "a new vault"): it is built beside it and linked into place.
pub(super) fn create_new(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("redb.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error(path, "cannot create", &e))?;
    let built = guarded(&tmp, || {
        let db = Database::create(&tmp).map_err(|e| open_error(&tmp, e))?;
        let store = FileStore { db: Some(db), path: tmp.clone() };
        store.migrate(&tmp)
    });
    let linked = built.and_then(|()| match std::fs::hard_link(&tmp, path) {
        // Another process created it first: use theirs.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(file_error(path, "cannot create", &e)),
        _ => Ok(()),
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Refuses what cannot be a store before the engine sees it, and keeps the file private.
pub(super) fn check_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, "cannot read", &e))?;
    if !meta.is_file() {
        return Err(StoreError::Foreign(path.to_owned(), "not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(StoreError::Damaged(path.to_owned(), "the file is empty".into()));
    }
    let mut head = [0u8; REDB_MAGIC.len()];
    let n = {
        use std::io::Read as _;
        let mut f = std::fs::File::open(path).map_err(|e| file_error(path, "cannot read", &e))?;
        f.read(&mut head).map_err(|e| file_error(path, "cannot read", &e))?
    };
    if head[..n] != REDB_MAGIC[..n] {
        return Err(StoreError::Foreign(path.to_owned(), "it is not a redb file".into()));
    }
    if n < REDB_MAGIC.len() {
        return Err(StoreError::Damaged(path.to_owned(), format!("the file is truncated to {n} bytes")));
    }
    if meta.permissions().mode() & 0o777 != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| file_error(path, "cannot make private", &e))?;
    }
    Ok(())
}

/// The first bytes of every redb file: a file that starts otherwise is foreign, not damaged.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

fn file_error(path: &Path, what: &str, e: &std::io::Error) -> StoreError {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
        "; run aivault as the user that owns the data directory"
    } else {
        ""
    };
    StoreError::Io(format!("{what} {}: {e}{hint}", path.display()))
}

pub(super) fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    match e {
        // The header checked out, so a short or malformed read means the rest is damaged.
        DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            StoreError::Damaged(path.to_owned(), io.to_string())
        }
        DatabaseError::Storage(redb::StorageError::Io(io)) => file_error(path, "cannot open", &io),
        DatabaseError::Storage(redb::StorageError::Corrupted(why)) => StoreError::Damaged(path.to_owned(), why),
        DatabaseError::UpgradeRequired(v) => {
            StoreError::Foreign(path.to_owned(), format!("an older redb file format ({v})"))
        }
        other => StoreError::Foreign(path.to_owned(), other.to_string()),
    }
}
