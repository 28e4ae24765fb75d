//! A node cut off from Redis, and a node lost with its clients (reliability item 4). Two real
//! server processes share one Postgres database and one Redis of the test's own.
//!
//! - Partition: node B runs in a network namespace of its own; iptables in it drops every
//!   packet to and from Redis for 10 s while clients of node A send at a steady rate. B's
//!   listeners end with every seq of the room exactly once and in order (B fills the gap from
//!   Postgres by seq while cut off; a listener B closed would resume), sends on B during the
//!   cut are answered (ack or error) within 2 s, and B is back on Redis after the cut.
//! - Node loss: 200 clients listen on node X while others send; X is killed with SIGKILL; the
//!   200 reconnect to node Y and `resume` from the last seq they saw, and what each one heard
//!   is exactly the (seq, id) list Postgres stores for the room.
//! - A node whose Redis subscriptions go silent (their packets blackholed, sockets left open)
//!   resubscribes (regression).
//!
//! Sizes (CI runs the item's sizes): `GUILDHALL_PARTITION_CUT_S` (10; scripts/faults 30),
//! `GUILDHALL_PARTITION_RATE` (sends per second on node A, 50), `GUILDHALL_KILL_CLIENTS` (200),
//! `GUILDHALL_KILL_RATE` (sends per second, 50).

mod clients;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use clients::{
    SentLog, assert_heard_exactly, assert_stored_exactly_once, join_all, lags, ms, send_paced,
    start_listeners, stored, wait_heard, wait_until,
};

use crate::helpers::{base_settings, database_url, fresh_database};
use crate::netns::{Forwarder, Netns};
use crate::process::{Node, PrivateRedis};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Where the suite's Postgres listens (from `GUILDHALL_TEST_DATABASE_URL`).
fn postgres_addr() -> SocketAddr {
    let url = database_url("postgres");
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split_once('/').map_or(host_port, |(h, _)| h);
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    with_port
        .to_socket_addrs()
        .unwrap()
        .next()
        .expect("postgres address")
}

/// `database_url(name)` reached through `addr` instead.
fn database_url_via(name: &str, addr: SocketAddr) -> String {
    let url = database_url(name);
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (auth, host_path) = rest.rsplit_once('@').map_or(("", rest), |(a, h)| (a, h));
    let path = host_path.split_once('/').map_or("", |(_, p)| p);
    let at = if auth.is_empty() { "" } else { "@" };
    format!("{scheme}://{auth}{at}{addr}/{path}")
}

/// Node A on the host and node B in a network namespace of its own, sharing a fresh database
/// and a Redis bound where both reach it. Fields drop in order: the nodes before the plumbing.
struct SplitPair {
    b: Node,
    a: Node,
    /// B cannot see the host's loopback, where the suite's Postgres listens.
    _postgres: Forwarder,
    redis: PrivateRedis,
    database: String,
    ns: Netns,
}

impl SplitPair {
    async fn start() -> Self {
        let ns = Netns::create();
        let redis = PrivateRedis::start_on(ns.host_ip).await;
        let database = fresh_database().await;
        let postgres = Forwarder::start(ns.host_ip, postgres_addr()).await;
        let mut settings = base_settings(&database);
        settings.insert("redis_url".into(), redis.url());
        let a = Node::start(settings.clone()).await;
        settings.insert(
            "database_url".into(),
            database_url_via(&database, postgres.addr),
        );
        let b = Node::start_in_netns(settings, &ns).await;
        Self {
            b,
            a,
            _postgres: postgres,
            redis,
            database,
            ns,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cut_off_from_redis_fills_the_gap_by_seq_and_answers_sends() {
    let cut = Duration::from_secs(knob("GUILDHALL_PARTITION_CUT_S", 10));
    let rate = knob("GUILDHALL_PARTITION_RATE", 50);
    const LISTENERS: usize = 20;
    const B_RATE: u64 = 10;
    const BEFORE_S: u64 = 3;
    /// Long enough after the cut for the node to be back on Redis and show it.
    const AFTER_S: u64 = 8;

    let pair = SplitPair::start().await;
    let SplitPair {
        ns,
        redis,
        database,
        a: node_a,
        b: node_b,
        ..
    } = &pair;

    let owner = node_a.register("partowner").await;
    let (community, room) = node_a.community_room(&owner).await;
    let listener = node_b.register("partlistener").await;
    node_b.join(&listener, &community).await;
    let (heard, listeners) =
        start_listeners(LISTENERS, &[node_b.ws_url(&listener.access_token)], &room);
    wait_until(Duration::from_secs(30), "listeners on B ready", || {
        heard.iter().all(|h| !h.lock().unwrap().readies.is_empty())
    })
    .await;

    // Senders on A for the whole run, and one on B (which keeps Postgres, not Redis).
    let seconds = BEFORE_S + cut.as_secs() + AFTER_S;
    let a_logs: Vec<SentLog> = (0..2).map(|_| SentLog::default()).collect();
    let mut senders: Vec<_> = a_logs
        .iter()
        .enumerate()
        .map(|(k, log)| {
            let ids = (0..rate / 2 * seconds)
                .map(|i| format!("a{k}-{i:05}"))
                .collect();
            tokio::spawn(send_paced(
                vec![node_a.ws_url(&owner.access_token)],
                room.clone(),
                ids,
                rate / 2,
                log.clone(),
            ))
        })
        .collect();
    let b_log = SentLog::default();
    // B's sender stops about when the cut ends, so that afterwards B has no message of its own
    // that would reveal a gap: what B's listeners then hear within milliseconds came by Redis.
    let b_sends = B_RATE * (BEFORE_S + cut.as_secs());
    let ids = (0..b_sends).map(|i| format!("b-{i:05}")).collect();
    senders.push(tokio::spawn(send_paced(
        vec![node_b.ws_url(&listener.access_token)],
        room.clone(),
        ids,
        B_RATE,
        b_log.clone(),
    )));
    let sent = usize::try_from(rate / 2 * 2 * seconds + b_sends).unwrap();

    let a_acked = || {
        a_logs
            .iter()
            .map(|l| l.lock().unwrap().acked.len())
            .sum::<usize>()
    };
    let warm = usize::try_from(rate * BEFORE_S).unwrap();
    wait_until(Duration::from_secs(60), "A's first sends acked", || {
        a_acked() >= warm
    })
    .await;

    ns.cut_from(redis.addr());
    let cut_at = Instant::now();
    tokio::time::sleep(cut).await;
    let dropped = ns.dropped_packets(redis.addr());
    ns.restore(redis.addr());
    let restored_at = Instant::now();
    assert!(
        dropped > 0,
        "the cut dropped no packet: B did not talk to Redis"
    );

    join_all(senders, "senders finish").await;
    let rows = stored(&database_url(database), &room).await;
    assert_stored_exactly_once(&rows, &[a_logs.clone(), vec![b_log.clone()]].concat(), sent);
    wait_heard(&heard, rows.len(), Duration::from_secs(30)).await;
    for task in listeners {
        task.abort();
    }
    for (i, h) in heard.iter().enumerate() {
        assert_heard_exactly(&h.lock().unwrap(), &rows, &format!("listener {i} on B"));
    }

    // Sends on B while it was cut off: answered, in time.
    let during_b: Vec<(Duration, Option<String>)> = b_log
        .lock()
        .unwrap()
        .answers
        .iter()
        .filter(|(written, _, _)| *written >= cut_at && *written < restored_at)
        .map(|(_, took, code)| (*took, code.clone()))
        .collect();
    assert!(!during_b.is_empty(), "no send on B during the cut");
    let slowest_b = during_b
        .iter()
        .map(|(took, _)| *took)
        .max()
        .unwrap_or_default();
    let refused: Vec<&String> = during_b.iter().filter_map(|(_, c)| c.as_ref()).collect();
    assert!(
        slowest_b < Duration::from_secs(2),
        "a send on B waited {slowest_b:?} during the cut"
    );

    // How late B's listeners heard what A acked: during the cut that could only come from
    // Postgres (filled by seq); from a few seconds after it, by Redis again.
    let b_done = b_log
        .lock()
        .unwrap()
        .acked
        .values()
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let back_from = (restored_at + Duration::from_secs(5)).max(b_done + Duration::from_millis(500));
    let end = Instant::now();
    let all = |window: std::ops::Range<Instant>| {
        let mut lags: Vec<Duration> = heard
            .iter()
            .flat_map(|h| lags(&a_logs, &h.lock().unwrap(), window.clone()))
            .collect();
        lags.sort_unstable();
        lags
    };
    let p50 = |lags: &[Duration]| lags.get(lags.len() / 2).copied().unwrap_or_default();
    let before = all(cut_at.checked_sub(Duration::from_secs(BEFORE_S)).unwrap()..cut_at);
    let during = all(cut_at..restored_at);
    let back = all(back_from..end);
    let worst_during = *during.last().expect("A's sends acked during the cut");
    // Well under the cut: the gap was filled while B was still cut off, not by Redis after it.
    assert!(
        worst_during < Duration::from_secs(5),
        "a message acked during the cut reached B after {worst_during:?}"
    );
    // By Redis, not by the 2 s Postgres sweep.
    assert!(
        back.len() > 100,
        "{} of A's messages after the cut",
        back.len()
    );
    assert!(
        p50(&back) < Duration::from_millis(200),
        "B not back on Redis: p50 lag {:?}",
        p50(&back)
    );
    // When B was back on Redis: the first whole second after the cut with p50 lag under 20 ms.
    let back_after = (0..AFTER_S).find(|s| {
        let from = restored_at + Duration::from_secs(*s);
        let lags = all(from..from + Duration::from_secs(1));
        !lags.is_empty() && p50(&lags) < Duration::from_millis(20)
    });
    let back_after = back_after.map_or_else(
        || format!("not within {AFTER_S} s of the cut"),
        |s| format!("{s}-{} s after the cut", s + 1),
    );

    let reconnects: usize = heard
        .iter()
        .map(|h| h.lock().unwrap().readies.len() - 1)
        .sum();
    eprintln!(
        "partition: {}s cut, {dropped} packets dropped; {} rows; {LISTENERS} listeners on B heard \
         every seq once in order, {reconnects} reconnects; lag A -> B listeners p50 {} ms before \
         the cut, p50 {} ms / max {} ms during it (filled by seq from Postgres), p50 {} ms from \
         {} ms after it; B back on Redis {back_after}; {} sends on B during \
         the cut: {} acked, refused {:?}, slowest answer {} ms",
        cut.as_secs(),
        rows.len(),
        ms(p50(&before)),
        ms(p50(&during)),
        ms(worst_during),
        ms(p50(&back)),
        ms(back_from - restored_at),
        during_b.len(),
        during_b.len() - refused.len(),
        refused,
        ms(slowest_b),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_under_200_clients_they_resume_on_the_other_and_hear_what_is_stored() {
    let clients = usize::try_from(knob("GUILDHALL_KILL_CLIENTS", 200)).unwrap();
    let rate = knob("GUILDHALL_KILL_RATE", 50);
    // Two senders on Y and one on X share the rate.
    let (y_rate, x_rate) = (rate * 2 / 5, rate / 5);
    const SECONDS: u64 = 8;

    let redis = PrivateRedis::start().await;
    let database = fresh_database().await;
    let mut settings = base_settings(&database);
    settings.insert("redis_url".into(), redis.url());
    let mut node_x = Node::start(settings.clone()).await;
    let node_y = Node::start(settings).await;
    let owner = node_y.register("killowner").await;
    let (community, room) = node_y.community_room(&owner).await;
    let listener = node_y.register("killlistener").await;
    node_y.join(&listener, &community).await;

    let urls = [
        node_x.ws_url(&listener.access_token),
        node_y.ws_url(&listener.access_token),
    ];
    let started = Instant::now();
    let (heard, listeners) = start_listeners(clients, &urls, &room);
    wait_until(Duration::from_secs(60), "listeners on X ready", || {
        heard.iter().all(|h| !h.lock().unwrap().readies.is_empty())
    })
    .await;
    let connected_in = started.elapsed();

    // Two senders on Y, and one on X that moves to Y when X dies (resending what X did not ack).
    let logs: Vec<SentLog> = (0..3).map(|_| SentLog::default()).collect();
    let owner_urls = [
        node_x.ws_url(&owner.access_token),
        node_y.ws_url(&owner.access_token),
    ];
    let plan: [(Vec<String>, u64); 3] = [
        (vec![owner_urls[1].clone()], y_rate),
        (vec![owner_urls[1].clone()], y_rate),
        (owner_urls.to_vec(), x_rate),
    ];
    let senders: Vec<_> = plan
        .into_iter()
        .zip(&logs)
        .enumerate()
        .map(|(k, ((urls, rate), log))| {
            let ids = (0..rate * SECONDS)
                .map(|i| format!("s{k}-{i:05}"))
                .collect();
            tokio::spawn(send_paced(urls, room.clone(), ids, rate, log.clone()))
        })
        .collect();
    let sent = usize::try_from((2 * y_rate + x_rate) * SECONDS).unwrap();
    let acked = || {
        logs.iter()
            .map(|l| l.lock().unwrap().acked.len())
            .sum::<usize>()
    };
    wait_until(
        Duration::from_secs(60),
        "a third of the sends acked",
        || acked() >= sent / 3,
    )
    .await;

    node_x.kill9().await;
    let killed_at = Instant::now();
    let stored_at_kill = stored(&database_url(&database), &room).await.len();

    join_all(senders, "senders finish after the kill").await;
    let rows = stored(&database_url(&database), &room).await;
    assert_stored_exactly_once(&rows, &logs, sent);
    wait_heard(&heard, rows.len(), Duration::from_secs(60)).await;
    for task in listeners {
        task.abort();
    }

    let mut resumed = 0;
    let mut all_back = Duration::ZERO;
    let mut caught_up = Duration::ZERO;
    for (i, h) in heard.iter().enumerate() {
        let h = h.lock().unwrap();
        assert_heard_exactly(&h, &rows, &format!("listener {i}"));
        // Connected to X first, and to Y (only) after the kill.
        assert_eq!(h.readies[0].0, 0, "listener {i} started on X");
        let after: Vec<&(usize, Instant)> =
            h.readies.iter().filter(|(_, at)| *at > killed_at).collect();
        assert!(
            !after.is_empty() && after.iter().all(|(node, _)| *node == 1),
            "listener {i} readies {:?}",
            h.readies
        );
        resumed += 1;
        all_back = all_back.max(after[0].1 - killed_at);
        // When it had everything that was stored at the moment of the kill.
        let had_all = h
            .messages
            .iter()
            .find(|(seq, _, _)| *seq >= i64::try_from(stored_at_kill).unwrap())
            .map_or(Duration::ZERO, |(_, _, at)| {
                at.saturating_duration_since(killed_at)
            });
        caught_up = caught_up.max(had_all);
    }
    assert!(
        stored_at_kill > 0 && stored_at_kill < rows.len(),
        "the kill came mid-run ({stored_at_kill} of {} rows)",
        rows.len()
    );
    eprintln!(
        "node kill: {clients} clients on X (connected in {} ms), {} rows ({stored_at_kill} at \
         the kill); {resumed}/{clients} resumed on Y, all reconnected {} ms after the kill, all \
         had every row stored at the kill {} ms after it; every client heard exactly the {} \
         stored (seq, id), 0 duplicates, 0 gaps",
        ms(connected_in),
        rows.len(),
        ms(all_back),
        ms(caught_up),
        rows.len(),
    );
}

/// The namespace-side ports of the Redis clients in SUBSCRIBE mode (`CLIENT LIST TYPE pubsub`).
async fn pubsub_ports(redis: &PrivateRedis, from: std::net::Ipv4Addr) -> Vec<u16> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.split_whitespace()
        .filter_map(|field| field.strip_prefix(&format!("addr={from}:")))
        .map(|port| port.parse().unwrap())
        .collect()
}

/// Regression: a node's Redis subscription only reads, so when its connection went silent
/// (a partition that dropped what Redis sent, or the close), the node waited on it for good,
/// or, after a 30 s cut, for tens of seconds of TCP retransmission back-off: other nodes'
/// messages then reached its clients only through the 2 s Postgres sweep. The relay now pings
/// its subscription and reconnects when no answer comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_whose_redis_subscription_goes_silent_resubscribes() {
    let pair = SplitPair::start().await;
    let SplitPair {
        ns,
        redis,
        database,
        a: node_a,
        b: node_b,
        ..
    } = &pair;
    let owner = node_a.register("silentowner").await;
    let (community, room) = node_a.community_room(&owner).await;
    let listener = node_b.register("silentlistener").await;
    node_b.join(&listener, &community).await;
    let (heard, listeners) = start_listeners(1, &[node_b.ws_url(&listener.access_token)], &room);
    wait_until(Duration::from_secs(30), "listener on B ready", || {
        !heard[0].lock().unwrap().readies.is_empty()
    })
    .await;

    // B's subscriptions (events, policy changes), and only they, lose every packet from now
    // on; their sockets stay open.
    let ports = pubsub_ports(redis, ns.inner_ip).await;
    assert!(!ports.is_empty(), "B subscribes to Redis");
    for port in &ports {
        ns.blackhole(redis.addr(), *port);
    }
    let silenced_at = Instant::now();

    // Only A sends, so B has no message of its own that would reveal a gap: what B hears
    // within milliseconds came by Redis; the sweep alone takes up to 2 s.
    let log = SentLog::default();
    let ids: Vec<String> = (0..100).map(|i| format!("q-{i:03}")).collect();
    let sender = tokio::spawn(send_paced(
        vec![node_a.ws_url(&owner.access_token)],
        room.clone(),
        ids,
        10,
        log.clone(),
    ));
    join_all(vec![sender], "sender finishes").await;
    let rows = stored(&database_url(database), &room).await;
    assert_stored_exactly_once(&rows, std::slice::from_ref(&log), 100);
    wait_heard(&heard, rows.len(), Duration::from_secs(30)).await;
    for task in listeners {
        task.abort();
    }
    let resubscribed: Vec<u16> = pubsub_ports(redis, ns.inner_ip)
        .await
        .into_iter()
        .filter(|p| !ports.contains(p))
        .collect();
    let heard = heard[0].lock().unwrap();
    assert_heard_exactly(&heard, &rows, "listener on B");
    // From 5 s on (a missed ping, its timeout and a new subscription), B is on Redis again.
    let late = lags(
        &[log],
        &heard,
        silenced_at + Duration::from_secs(5)..Instant::now(),
    );
    let p50 = late[late.len() / 2];
    eprintln!(
        "silent subscription: B's subscriptions {ports:?} blackholed, new ones {resubscribed:?}; \
         from 5 s after, {} messages reached B with p50 {} ms, max {} ms",
        late.len(),
        ms(p50),
        ms(*late.last().unwrap())
    );
    assert_eq!(
        resubscribed.len(),
        ports.len(),
        "every silent subscription was replaced"
    );
    assert!(late.len() > 20, "{} messages after 5 s", late.len());
    assert!(
        p50 < Duration::from_millis(100),
        "B not back on Redis: p50 lag {p50:?}"
    );
}
