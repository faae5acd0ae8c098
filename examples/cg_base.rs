use aioproducer::rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use aioproducer::rdkafka::{ClientConfig, ClientContext};
use aioproducer::EmbeddedCluster;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
struct Ctx(AtomicU64);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, _r: &DeliveryResult<'_>, _i: usize) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
static P: [u8; 100] = [b'x'; 100];
fn main() {
    let c = EmbeddedCluster::new(1).unwrap();
    c.create_topic("t", 6).unwrap();
    let p: Arc<BaseProducer<Ctx>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap_servers())
            .set("enable.idempotence", "true")
            .create_with_context(Ctx(AtomicU64::new(0)))
            .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, s2) = (p.clone(), stop.clone());
    let poller = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            p2.poll(Duration::from_millis(100));
        }
    });
    p.send(BaseRecord::<(), [u8], usize>::with_opaque_to("t", 0).payload(&P[..]))
        .map_err(|(e, _)| e)
        .unwrap();
    while p.context().0.load(Ordering::Relaxed) < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = 100_000u64;
    for i in 0..n {
        let mut r = BaseRecord::<(), [u8], usize>::with_opaque_to("t", i as usize).payload(&P[..]);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::yield_now();
                }
            }
        }
    }
    while p.context().0.load(Ordering::Relaxed) < n + 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
}
