//! SASL OAUTHBEARER tokens from an async provider of the application's
//! ([`AioProducerBuilder::oauthbearer_token_provider`](crate::AioProducerBuilder::oauthbearer_token_provider)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

/// An OAUTHBEARER token and what librdkafka needs to know of it.
///
/// `Debug` shows everything but the token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The token, as the broker expects it (a JWS compact serialization for
    /// Kafka's own validators).
    pub value: String,
    /// The principal the token is for.
    pub principal: String,
    /// When the token expires. librdkafka asks for a new one when 80% of
    /// the time to this instant has passed.
    pub expires_at: SystemTime,
    /// SASL extensions sent with the token (`key`, `value`), if any.
    pub extensions: Vec<(String, String)>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("value", &"[redacted]")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// What a token provider's future resolves to: the token, or why there is
/// none (librdkafka logs it, raises it as an authentication error, and
/// asks again 10 s later).
pub type TokenResult = Result<OAuthToken, String>;

/// Where OAUTHBEARER tokens come from: an async function of the
/// application's, called whenever librdkafka needs a token (at start, then
/// before each one expires).
///
/// The returned future is polled to completion on a thread of the
/// producer's own (`aioproducer-oauth`), never on librdkafka's threads nor
/// on the caller's executor, and it runs outside any async runtime. A
/// provider that needs one (an HTTP client on tokio, say) spawns its work
/// on that runtime and returns the join handle's future, as below. A
/// provider that has not answered within a minute counts as failed.
///
/// Any `Fn() -> impl Future<Output = TokenResult>` is a provider:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use aioproducer::{AioProducer, OAuthToken};
///
/// # fn main() -> Result<(), aioproducer::Error> {
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let handle = runtime.handle().clone();
/// let producer = AioProducer::builder()
///     .bootstrap_servers("localhost:9092")
///     .set("security.protocol", "sasl_ssl")
///     .set("sasl.mechanisms", "OAUTHBEARER")
///     .oauthbearer_token_provider(move || {
///         // Fetch the token on the application's runtime.
///         let fetched = handle.spawn(async {
///             // ... ask the identity provider ...
///             Ok(OAuthToken {
///                 value: "eyJhbGciOi...".into(),
///                 principal: "orders-service".into(),
///                 expires_at: SystemTime::now() + Duration::from_secs(3600),
///                 extensions: Vec::new(),
///             })
///         });
///         async move { fetched.await.map_err(|e| e.to_string())? }
///     })
///     .build()?;
/// # drop(producer);
/// # Ok(())
/// # }
/// ```
pub trait OAuthTokenProvider: Send + Sync + 'static {
    /// A new token.
    fn token(&self) -> Pin<Box<dyn Future<Output = TokenResult> + Send>>;
}

impl<F, Fut> OAuthTokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TokenResult> + Send + 'static,
{
    fn token(&self) -> Pin<Box<dyn Future<Output = TokenResult> + Send>> {
        Box::pin(self())
    }
}
