//! Who is calling. Tokens are JWTs whose algorithm is pinned by configuration,
//! never taken from the token header.

mod dev;
mod extractor;
mod jwt;

pub use extractor::{AuthUser, TokenSource, token_from_request};
pub use jwt::{Auth, AuthSetupError, Verified};
