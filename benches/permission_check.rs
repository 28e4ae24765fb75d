//! Permission-check latency with 100,000 policy lines in one community.
//!
//! `cargo bench --bench permission_check` builds one large community (a tree of a few hundred
//! scopes, a few thousand grants and overrides, members filling the rest up to 100,000 lines),
//! times `CommunityIndex::effective` call by call over 200,000 random queries, times Casbin's own
//! `enforce` (the engine of record) on the same lines over a few hundred queries, runs a short
//! criterion group, and prints a markdown table. Without `--bench` (e.g. `cargo test --benches`)
//! it runs a tiny version so test runs stay fast.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use guildhall::permissions::catalogue::{Builtin, Perm, PermSet};
use guildhall::permissions::engine;
use guildhall::permissions::index::CommunityIndex;
use guildhall::permissions::lines::{self, Grant, Line, Override, PolicySnapshot, Subject};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Scale {
    total_lines: usize,
    groups: usize,
    rooms: usize,
    custom_roles: usize,
    /// Members who receive grants and user overrides (all of them are members).
    staff: usize,
    grants: usize,
    role_overrides: usize,
    user_overrides: usize,
    visitors: usize,
    queries: usize,
    casbin_queries: usize,
    criterion_time: Duration,
}

const FULL: Scale = Scale {
    total_lines: 100_000,
    groups: 120,
    rooms: 230,
    custom_roles: 12,
    staff: 2_000,
    grants: 1_000,
    role_overrides: 60,
    user_overrides: 800,
    visitors: 1_000,
    queries: 200_000,
    casbin_queries: 300,
    criterion_time: Duration::from_secs(3),
};

const SMOKE: Scale = Scale {
    total_lines: 1_000,
    groups: 10,
    rooms: 20,
    custom_roles: 3,
    staff: 50,
    grants: 30,
    role_overrides: 5,
    user_overrides: 20,
    visitors: 10,
    queries: 1_000,
    casbin_queries: 20,
    criterion_time: Duration::from_millis(200),
};

const MAX_GROUP_DEPTH: u32 = 4;

fn fresh_id(rng: &mut StdRng) -> Uuid {
    Uuid::from_u128(rng.random())
}

fn random_perms(rng: &mut StdRng, p: f64) -> PermSet {
    Perm::ALL
        .iter()
        .filter(|_| rng.random_bool(p))
        .fold(PermSet::EMPTY, |set, perm| set.union(PermSet::of(&[*perm])))
}

fn random_allow_deny(rng: &mut StdRng) -> (PermSet, PermSet) {
    let (mut allow, mut deny) = (PermSet::EMPTY, PermSet::EMPTY);
    for perm in Perm::ALL {
        match rng.random_range(0..10) {
            0 => allow = allow.union(PermSet::of(&[*perm])),
            1 => deny = deny.union(PermSet::of(&[*perm])),
            _ => {}
        }
    }
    (allow, deny)
}

struct Community {
    id: Uuid,
    /// Path (community first) of every scope, the community's own path first.
    paths: Vec<Vec<Uuid>>,
    staff: Vec<Uuid>,
    members: Vec<Uuid>,
    visitors: Vec<Uuid>,
    lines: Vec<Line>,
    policy_lines: usize,
    grant_lines: usize,
    compile_time: Duration,
}

fn build(scale: Scale, rng: &mut StdRng) -> Community {
    let community = fresh_id(rng);
    // Tree: groups nested up to depth 4, rooms under the community or any group.
    let mut paths: Vec<Vec<Uuid>> = vec![vec![community]];
    let mut depths = vec![(community, 0_u32)];
    let mut group_paths: Vec<usize> = vec![0];
    for _ in 0..scale.groups {
        let parents: Vec<usize> = group_paths
            .iter()
            .copied()
            .filter(|p| paths[*p].len() as u32 <= MAX_GROUP_DEPTH)
            .collect();
        let mut path = paths[*parents.choose(rng).unwrap()].clone();
        let id = fresh_id(rng);
        path.push(id);
        depths.push((id, path.len() as u32 - 1));
        group_paths.push(paths.len());
        paths.push(path);
    }
    for _ in 0..scale.rooms {
        let mut path = paths[*group_paths.choose(rng).unwrap()].clone();
        let id = fresh_id(rng);
        path.push(id);
        depths.push((id, path.len() as u32 - 1));
        paths.push(path);
    }
    let scopes: Vec<Uuid> = paths.iter().map(|p| *p.last().unwrap()).collect();

    let (owner, admin, moderator, member) =
        (fresh_id(rng), fresh_id(rng), fresh_id(rng), fresh_id(rng));
    let mut roles = vec![
        (admin, Builtin::Admin.default_permissions()),
        (moderator, Builtin::Moderator.default_permissions()),
        (member, Builtin::Member.default_permissions()),
    ];
    let customs: Vec<Uuid> = (0..scale.custom_roles).map(|_| fresh_id(rng)).collect();
    for role in &customs {
        roles.push((*role, random_perms(rng, 0.3)));
    }

    let staff: Vec<Uuid> = (0..scale.staff).map(|_| fresh_id(rng)).collect();
    let mut grants = BTreeSet::from([Grant {
        user: staff[0],
        role: owner,
        scope: community,
    }]);
    for _ in 0..scale.grants {
        let role = match rng.random_range(0..10) {
            0 => admin,
            1..4 => moderator,
            _ => *customs.choose(rng).unwrap(),
        };
        let (user, scope) = (*staff.choose(rng).unwrap(), *scopes.choose(rng).unwrap());
        grants.insert(Grant { user, role, scope });
    }
    let mut overrides = Vec::new();
    let mut taken = BTreeSet::new();
    for i in 0..scale.role_overrides + scale.user_overrides {
        let subject = if i < scale.role_overrides {
            // Role overrides compile to one line set per scope the role is granted at: mostly on
            // `member` (held at the community only), some on custom roles.
            Subject::Role(if rng.random_bool(0.6) {
                member
            } else {
                *customs.choose(rng).unwrap()
            })
        } else {
            Subject::User(*staff.choose(rng).unwrap())
        };
        let scope = *scopes.choose(rng).unwrap();
        let key = (scope, format!("{subject:?}"));
        if taken.insert(key) {
            let (allow, deny) = random_allow_deny(rng);
            overrides.push(Override {
                scope,
                subject,
                allow,
                deny,
            });
        }
    }
    let snapshot = PolicySnapshot {
        community_id: community,
        public: true,
        owner_role: owner,
        member_role: member,
        roles: roles.into_iter().collect(),
        grants: grants.into_iter().collect(),
        overrides,
        depths: depths.into_iter().collect(),
    };

    let started = Instant::now();
    let mut lines = lines::compile(&snapshot);
    let compile_time = started.elapsed();
    let policy_lines = lines.iter().filter(|l| l.ptype == "p").count();
    let grant_lines = lines.len() - policy_lines;
    // Membership lines (a database trigger keeps them): the staff, then members up to the total.
    let mut members = Vec::new();
    for user in &staff {
        lines.push(Line::g(*user, member, community));
    }
    while lines.len() < scale.total_lines {
        let user = fresh_id(rng);
        lines.push(Line::g(user, member, community));
        members.push(user);
    }
    let visitors = (0..scale.visitors).map(|_| fresh_id(rng)).collect();
    Community {
        id: community,
        paths,
        staff,
        members,
        visitors,
        lines,
        policy_lines,
        grant_lines,
        compile_time,
    }
}

/// Random questions: 40% staff (grants, overrides), 55% plain members, 5% visitors.
fn queries(community: &Community, n: usize, rng: &mut StdRng) -> Vec<(Uuid, usize, Perm)> {
    (0..n)
        .map(|_| {
            let pool = match rng.random_range(0..20) {
                0..8 => &community.staff,
                8..19 => &community.members,
                _ => &community.visitors,
            };
            let user = *pool.choose(rng).unwrap();
            (
                user,
                rng.random_range(0..community.paths.len()),
                *Perm::ALL.choose(rng).unwrap(),
            )
        })
        .collect()
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    mean: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let total: Duration = samples.iter().sum();
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *samples.last().unwrap(),
        mean: total / samples.len() as u32,
    }
}

/// Resident set size of this process, from /proc (Linux); `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// How many (role, held-at scope) rules the index keeps per scope: `effective` scans them at
/// every level of the path. Role overrides fan out to one rule per scope the role is granted at.
fn role_rules_per_scope(lines: &[Line]) -> (usize, f64) {
    let mut rules: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    for line in lines
        .iter()
        .filter(|l| l.ptype == "p" && l.values[5] == "role")
    {
        let v = &line.values;
        rules
            .entry(v[1].as_str())
            .or_default()
            .insert((v[0].as_str(), v[2].as_str()));
    }
    let max = rules.values().map(HashSet::len).max().unwrap_or(0);
    let mean = rules.values().map(HashSet::len).sum::<usize>() as f64 / rules.len().max(1) as f64;
    (max, mean)
}

fn heap_bytes(lines: &[Line]) -> usize {
    lines
        .iter()
        .map(|l| {
            size_of::<Line>()
                + l.ptype.capacity()
                + l.values.capacity() * size_of::<String>()
                + l.values.iter().map(String::capacity).sum::<usize>()
        })
        .sum()
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { FULL } else { SMOKE };
    let mut rng = StdRng::seed_from_u64(0xBE4C_0001);
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |name: &str, value: String| rows.push((name.to_owned(), value));

    // Arrange: the community and its lines.
    let community = build(scale, &mut rng);
    let lines = &community.lines;
    row(
        "policy lines",
        format!(
            "{} ({} p, {} g grants, {} g membership); {} scopes",
            lines.len(),
            community.policy_lines,
            community.grant_lines,
            lines.len() - community.policy_lines - community.grant_lines,
            community.paths.len()
        ),
    );
    row(
        "lines::compile (roles, grants, overrides)",
        fmt(community.compile_time),
    );
    let (max_rules, mean_rules) = role_rules_per_scope(lines);
    row(
        "index role rules (role, held-at) per scope",
        format!("max {max_rules}, mean {mean_rules:.1}"),
    );
    row(
        "lines in memory (heap estimate)",
        mib(heap_bytes(lines) as u64),
    );

    // Index build: the best of a few, and the resident memory it adds.
    let rss_before = rss_bytes();
    let started = Instant::now();
    let index = CommunityIndex::compile(lines);
    let mut build_times = vec![started.elapsed()];
    let rss_after = rss_bytes();
    for _ in 0..4 {
        let started = Instant::now();
        black_box(CommunityIndex::compile(lines));
        build_times.push(started.elapsed());
    }
    build_times.sort_unstable();
    row(
        "index build (median of 5)",
        fmt(build_times[build_times.len() / 2]),
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        row(
            "index memory (RSS growth while building)",
            mib(after.saturating_sub(before)),
        );
    }
    assert_eq!(index.line_count, lines.len());

    // Index latency, call by call.
    let questions = queries(&community, scale.queries, &mut rng);
    let mut timer_overhead = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        timer_overhead.push(started.elapsed());
    }
    let timer = percentiles(timer_overhead).p50;
    let mut samples = Vec::with_capacity(questions.len());
    let mut allowed = 0_usize;
    let run_started = Instant::now();
    for (user, scope, perm) in &questions {
        let path = &community.paths[*scope];
        let started = Instant::now();
        let set = index.effective(*user, path);
        samples.push(started.elapsed());
        allowed += usize::from(black_box(set).contains(*perm));
    }
    let wall = run_started.elapsed();
    let index_stats = percentiles(samples);
    let name = format!(
        "index `effective` ({} queries, {allowed} allowed)",
        questions.len()
    );
    row(
        &name,
        format!(
            "p50 {} · p99 {} · p99.9 {} · max {} · mean {}",
            fmt(index_stats.p50),
            fmt(index_stats.p99),
            fmt(index_stats.p999),
            fmt(index_stats.max),
            fmt(index_stats.mean)
        ),
    );
    row(
        "index throughput (one thread, incl. timing)",
        format!(
            "{:.2} M checks/s; timer overhead ~{}",
            questions.len() as f64 / wall.as_secs_f64() / 1e6,
            fmt(timer)
        ),
    );

    // Casbin on the same lines (the engine of record), a few hundred questions.
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let started = Instant::now();
    let enforcer = runtime
        .block_on(engine::from_lines(lines))
        .expect("Casbin accepts the lines");
    row(
        "Casbin enforcer build (`engine::from_lines`)",
        fmt(started.elapsed()),
    );
    let casbin_questions = queries(&community, scale.casbin_queries, &mut rng);
    let mut samples = Vec::with_capacity(casbin_questions.len());
    let mut disagreements = 0;
    for (user, scope, perm) in &casbin_questions {
        let path = &community.paths[*scope];
        let started = Instant::now();
        let theirs = engine::decide(&enforcer, *user, path, *perm).expect("enforce");
        samples.push(started.elapsed());
        disagreements += usize::from(theirs != index.effective(*user, path).contains(*perm));
    }
    let casbin_stats = percentiles(samples);
    row(
        &format!("Casbin `decide` ({} queries)", casbin_questions.len()),
        format!(
            "p50 {} · p99 {} · max {} · mean {}",
            fmt(casbin_stats.p50),
            fmt(casbin_stats.p99),
            fmt(casbin_stats.max),
            fmt(casbin_stats.mean)
        ),
    );
    row(
        "index vs Casbin disagreements on those queries",
        disagreements.to_string(),
    );
    row(
        "Casbin p50 / index p50",
        format!(
            "~{:.0}x",
            casbin_stats.p50.as_secs_f64() / index_stats.p50.as_secs_f64().max(1e-9)
        ),
    );

    // Criterion: statistically sound check latency with a short measurement time.
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(scale.criterion_time)
        .warm_up_time(scale.criterion_time / 3)
        .sample_size(30);
    let mut group = criterion.benchmark_group("permission_check");
    let mut next = 0;
    group.bench_function("index_effective_random", |b| {
        b.iter(|| {
            let (user, scope, perm) = questions[next % questions.len()];
            next += 1;
            black_box(
                index
                    .effective(black_box(user), black_box(&community.paths[scope]))
                    .contains(perm),
            )
        });
    });
    let deepest = community.paths.iter().max_by_key(|p| p.len()).unwrap();
    let staff = community.staff[1];
    group.bench_function("index_effective_staff_deepest_room", |b| {
        b.iter(|| black_box(index.effective(black_box(staff), black_box(deepest))));
    });
    group.finish();
    criterion.final_summary();

    println!(
        "\n## permission_check ({} scale, community {})\n",
        if full { "full" } else { "smoke" },
        community.id
    );
    println!("| measure | result |\n|---|---|");
    for (name, value) in &rows {
        println!("| {name} | {value} |");
    }
    assert_eq!(disagreements, 0, "the index disagrees with Casbin");
}
