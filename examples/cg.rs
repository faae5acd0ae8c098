use aioproducer::{AioProducer, EmbeddedCluster, Record, Topic};
use bytes::Bytes;
static P: [u8; 100] = [b'x'; 100];
fn main() {
    let c = EmbeddedCluster::new(1).unwrap();
    c.create_topic("t", 6).unwrap();
    let p = AioProducer::builder()
        .bootstrap_servers(c.bootstrap_servers())
        .workers(1)
        .build()
        .unwrap();
    let topic = Topic::from("t");
    futures::executor::block_on(p.send(Record::new(&topic).with_payload("w"))).unwrap();
    let n = 100_000;
    let mut fs: std::collections::VecDeque<aioproducer::DeliveryFuture> =
        std::collections::VecDeque::with_capacity(20000);
    for _ in 0..n {
        if fs.len() == 20000 {
            fs.pop_front().unwrap().wait().unwrap();
        }
        let r = Record::new(&topic).with_payload(Bytes::from_static(&P));
        fs.push_back(futures::executor::block_on(p.produce(r)).unwrap());
    }
    for f in fs {
        f.wait().unwrap();
    }
    futures::executor::block_on(p.close());
}
