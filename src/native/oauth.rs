//! The OAUTHBEARER token thread (`aioproducer-oauth`): runs the
//! application's async token provider whenever librdkafka asks for a token,
//! and hands the token to librdkafka.
//!
//! librdkafka asks through its refresh event (at start, then at 80% of each
//! token's lifetime, and 10 s after a failure), which comes to `rdk:bg` with
//! the other events. `rdk:bg` must never wait on the provider (every
//! delivery report would wait behind it), so it only sends a request to
//! this thread, which polls the provider's future to completion (for at
//! most [`PROVIDER_TIMEOUT`]) and then calls `rd_kafka_oauthbearer_set_token`,
//! or `rd_kafka_oauthbearer_set_token_failure` with the provider's reason.
//! Requests that come while a refresh runs are served by the next one.
//! The thread also asks once on its own at start, so the first token
//! never depends on when the first request arrives.
//!
//! Until librdkafka accepted a first token, a provider's failure fails the
//! records librdkafka holds at once (`reachability.rs`): without a token
//! it tries no broker at all.
//!
//! The thread uses the raw handle, so it is stopped and joined before the
//! handle is destroyed (`NativeProducer::drop`).

use std::ffi::{c_char, CString};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::bindings as rd;

use crate::native::reachability::Reachability;
use crate::oauth::{OAuthToken, OAuthTokenProvider};
use crate::sync::block_on::block_on;

/// The longest a provider may take to answer before its refresh counts as
/// failed.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Request {
    Refresh,
    Stop,
}

/// The way to the token thread, for `rdk:bg`'s refresh events.
#[derive(Debug)]
pub(crate) struct TokenRequests(Sender<Request>);

impl TokenRequests {
    /// Asks for a new token; never waits.
    pub(crate) fn refresh(&self) {
        // A send fails only once the thread has exited (shutdown).
        let _ = self.0.send(Request::Refresh);
    }

    fn stop(&self) {
        let _ = self.0.send(Request::Stop);
    }
}

/// The channel to a token thread not started yet: the requests go in the
/// client's context before the handle exists; the thread starts once it
/// does ([`TokenThread::start`]).
pub(crate) fn token_channel() -> (Arc<TokenRequests>, TokenInbox) {
    let (sender, receiver) = channel();
    (Arc::new(TokenRequests(sender)), TokenInbox(receiver))
}

/// The token thread's end of the channel.
#[derive(Debug)]
pub(crate) struct TokenInbox(Receiver<Request>);

/// A running token thread.
#[derive(Debug)]
pub(crate) struct TokenThread {
    requests: Arc<TokenRequests>,
    thread: Option<JoinHandle<()>>,
}

/// The raw handle, sent to the token thread.
struct Handle(*mut rd::rd_kafka_t);

// SAFETY: librdkafka's handle is thread-safe, and the thread is joined
// before it is destroyed (module docs).
unsafe impl Send for Handle {}

impl TokenThread {
    /// Starts the thread for `rk`.
    ///
    /// # Safety
    /// `rk` stays a live handle until [`stop`](Self::stop) has returned.
    pub(crate) unsafe fn start(
        rk: *mut rd::rd_kafka_t,
        provider: Arc<dyn OAuthTokenProvider>,
        reachability: Arc<Reachability>,
        requests: Arc<TokenRequests>,
        inbox: TokenInbox,
    ) -> std::io::Result<Self> {
        let handle = Handle(rk);
        let thread = std::thread::Builder::new()
            .name("aioproducer-oauth".into())
            .spawn(move || {
                let handle = handle;
                serve(handle.0, &*provider, &reachability, &inbox.0);
            })?;
        Ok(Self {
            requests,
            thread: Some(thread),
        })
    }

    /// Stops the thread (after the refresh it runs, if any) and joins it.
    pub(crate) fn stop(&mut self) {
        self.requests.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the OAUTHBEARER token thread panicked");
            }
        }
    }
}

fn serve(
    rk: *mut rd::rd_kafka_t,
    provider: &dyn OAuthTokenProvider,
    reachability: &Reachability,
    inbox: &Receiver<Request>,
) {
    let mut pending = true;
    loop {
        if pending {
            // Requests that came meanwhile are served by this refresh.
            while let Ok(request) = inbox.try_recv() {
                if let Request::Stop = request {
                    return;
                }
            }
            refresh(rk, provider, reachability);
        }
        match inbox.recv() {
            Ok(Request::Refresh) => pending = true,
            Ok(Request::Stop) | Err(_) => return,
        }
    }
}

/// Runs the provider and hands its answer to librdkafka.
fn refresh(
    rk: *mut rd::rd_kafka_t,
    provider: &dyn OAuthTokenProvider,
    reachability: &Reachability,
) {
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(provider.token(), Some(Instant::now() + PROVIDER_TIMEOUT))
    }));
    let answer = match asked {
        Ok(Some(Ok(token))) => set_token(rk, &token),
        Ok(Some(Err(reason))) => Err(format!("the token provider failed: {reason}")),
        Ok(None) => Err(format!(
            "the token provider did not answer within {PROVIDER_TIMEOUT:?}"
        )),
        Err(_) => Err("the token provider panicked".into()),
    };
    if answer.is_ok() {
        reachability.token_accepted();
    }
    if let Err(reason) = answer {
        log::warn!("OAUTHBEARER token refresh failed: {reason}");
        let reason = CString::new(reason.replace('\0', " ")).expect("no NUL left");
        // SAFETY: live handle (`TokenThread::start`'s contract), a
        // NUL-terminated string librdkafka copies.
        unsafe { rd::rd_kafka_oauthbearer_set_token_failure(rk, reason.as_ptr()) };
    }
}

/// Hands `token` to librdkafka; its reason when librdkafka refuses it.
fn set_token(rk: *mut rd::rd_kafka_t, token: &OAuthToken) -> Result<(), String> {
    let text = |what: &str, s: &str| {
        CString::new(s).map_err(|_| format!("the token's {what} contains a NUL byte"))
    };
    let value = text("value", &token.value)?;
    let principal = text("principal", &token.principal)?;
    let mut extensions = Vec::with_capacity(token.extensions.len() * 2);
    for (key, value) in &token.extensions {
        extensions.push(text("extension key", key)?);
        extensions.push(text("extension value", value)?);
    }
    let mut pointers: Vec<*const c_char> = extensions.iter().map(|s| s.as_ptr()).collect();
    let lifetime = token
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the token expires before 1970".to_string())?;
    let lifetime = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    if token.expires_at <= SystemTime::now() {
        return Err("the token has already expired".into());
    }
    let mut reason = [0 as c_char; 512];
    // SAFETY: live handle (`TokenThread::start`'s contract); the strings
    // are NUL-terminated and outlive the call, which copies them;
    // `pointers` holds `pointers.len()` of them; `reason` is writable for
    // its length.
    let err = unsafe {
        rd::rd_kafka_oauthbearer_set_token(
            rk,
            value.as_ptr(),
            lifetime,
            principal.as_ptr(),
            pointers.as_mut_ptr(),
            pointers.len(),
            reason.as_mut_ptr(),
            reason.len(),
        )
    };
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: NUL-terminated by librdkafka (zeroed before).
    Err(unsafe { crate::native::c_str(reason.as_ptr()) })
}
