//! The real catalogue: loads the anime of [bangumi-data](https://github.com/bangumi-data/bangumi-data)
//! (the npm package `bangumi-data`, CC-BY-4.0, about 8,500 anime) into a running AnineePlus
//! through its GraphQL API, signed in as an admin, so that every anime takes the product's
//! own path: validation, rows, outbox, `anime.created` events, the search indexer.
//!
//! - [`bangumi`]: the catalogue file and its mapping onto `CreateAnimeInput` (pure);
//! - [`client`]: the API: sign-in, the anime it holds, packed `createAnime` requests;
//! - [`seed`]: one run: leave out what exists (idempotent), create the rest with a few
//!   requests in flight, report progress.
//!
//! Downloading the package (and caching it) is `scripts/seed.sh`'s job; the binary
//! `anineplus-seed` reads the extracted `dist/data.json`. `docs/catalogue.md` says more.

pub mod bangumi;
pub mod client;
pub mod seed;

/// The attribution the catalogue's licence asks for; printed by every run.
pub const ATTRIBUTION: &str = "Anime catalogue: bangumi-data (https://github.com/bangumi-data/bangumi-data), \
licensed under CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/)";

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Signing in as an admin failed (the caller's fix: credentials or `ADMIN_EMAILS`).
    #[error("sign-in: {0}")]
    SignIn(String),
    /// The API could not be reached or answered something unexpected.
    #[error("API: {0}")]
    Api(String),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
