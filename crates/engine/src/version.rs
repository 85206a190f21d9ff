//! Format versions: what this build writes and reads of the engine's formats that cross a
//! process or outlive one. The rule they follow is in docs/upgrades.md.
//!
//! A format's version changes only when its layout does. A build reads every version from
//! its format's oldest to its newest and writes the newest; a version outside that range is
//! refused with [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) (or, on the
//! transport, by ending the connection with that message logged), never read as if it were
//! one this build knows.

/// TRANSPORT_VERSION is the version of the transport's frame layout this build writes: the
/// fourth byte of a frame's magic, as an ASCII digit ("ZZM1", "ZZS1").
pub const TRANSPORT_VERSION: u8 = 1;
/// OLDEST_TRANSPORT_VERSION is the oldest frame layout this build reads.
pub const OLDEST_TRANSPORT_VERSION: u8 = 1;

/// SESSION_TABLE_VERSION is the version of the session table at the head of a snapshot file
/// this build writes: the last two bytes of its magic, as ASCII digits ("ZZSESS01").
pub const SESSION_TABLE_VERSION: u8 = 1;
/// OLDEST_SESSION_TABLE_VERSION is the oldest session table layout this build reads.
pub const OLDEST_SESSION_TABLE_VERSION: u8 = 1;

// Each version is written as ASCII digits in a magic: one digit for frames, two for tables.
const _: () = assert!(TRANSPORT_VERSION <= 9 && SESSION_TABLE_VERSION <= 99);

/// unsupported is the message of a refused version of `format`, saying what this build
/// reads.
pub(crate) fn unsupported(format: &str, version: u32, oldest: u8, newest: u8) -> String {
    let fix = if version > u32::from(newest) {
        "a newer build wrote it: upgrade this host"
    } else {
        "a build too old for this one wrote it: upgrade that one first"
    };
    format!(
        "{format} version {version} is not supported: this build reads versions {oldest} to \
         {newest}; {fix} (see docs/upgrades.md)"
    )
}

/// supported tells whether `version` lies between `oldest` and `newest`.
pub(crate) fn supported(version: u32, oldest: u8, newest: u8) -> bool {
    (u32::from(oldest)..=u32::from(newest)).contains(&version)
}
