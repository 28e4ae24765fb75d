//! REST: accounts, communities, rooms, metrics.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{PASSWORD, REGISTER_CONCURRENCY};
use futures::StreamExt;
use futures::stream::{self};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) token: String,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A request that must succeed (setup).
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let (status, answer) = self
            .call(method.clone(), path, token, Some(&body))
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    }

    pub(crate) async fn register(&self, username: String) -> Account {
        let body = self
            .ok(
                Method::POST,
                "/v1/auth/register",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        Account {
            token: body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn register_all(&self, names: Vec<String>) -> Vec<Account> {
        stream::iter(names)
            .map(|name| self.register(name))
            .buffered(REGISTER_CONCURRENCY)
            .collect()
            .await
    }

    /// A public community and `rooms` public rooms in it, owned by `owner`.
    pub(crate) async fn community(
        &self,
        owner: &Account,
        name: &str,
        rooms: usize,
    ) -> (Uuid, Vec<Uuid>) {
        let community = self
            .ok(
                Method::POST,
                "/v1/communities",
                Some(&owner.token),
                json!({"name": name, "visibility": "public"}),
            )
            .await;
        let id: Uuid = community["id"].as_str().unwrap().parse().unwrap();
        let mut room_ids = Vec::with_capacity(rooms);
        for k in 0..rooms {
            let room = self
                .ok(
                    Method::POST,
                    &format!("/v1/communities/{id}/rooms"),
                    Some(&owner.token),
                    json!({"name": format!("room-{k}"), "private": false}),
                )
                .await;
            room_ids.push(room["id"].as_str().unwrap().parse().unwrap());
        }
        (id, room_ids)
    }

    pub(crate) async fn join_all(&self, community: Uuid, members: &[Account]) {
        let path = format!("/v1/communities/{community}/join");
        stream::iter(members)
            .map(|m| self.ok(Method::POST, &path, Some(&m.token), json!({})))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    /// Selected counters and histogram sums from `/metrics`.
    pub(crate) async fn metrics(&self) -> Metrics {
        let text = match self.http.get(format!("{}/metrics", self.base)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Metrics {
            batch_sum: value("guildhall_persist_batch_size_sum"),
            batch_count: value("guildhall_persist_batch_size_count"),
            commit_seconds_sum: value("guildhall_persist_seconds_sum"),
            commit_count: value("guildhall_persist_seconds_count"),
            slow_consumers: value("guildhall_slow_consumer_disconnects_total"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Metrics {
    pub(crate) batch_sum: f64,
    pub(crate) batch_count: f64,
    pub(crate) commit_seconds_sum: f64,
    pub(crate) commit_count: f64,
    pub(crate) slow_consumers: f64,
}

impl Metrics {
    pub(crate) fn mean_commit_since(&self, before: &Self) -> Duration {
        let count = self.commit_count - before.commit_count;
        if count > 0.0 {
            Duration::from_secs_f64((self.commit_seconds_sum - before.commit_seconds_sum) / count)
        } else {
            Duration::ZERO
        }
    }

    pub(crate) fn mean_batch_since(&self, before: &Self) -> f64 {
        let count = self.batch_count - before.batch_count;
        if count > 0.0 {
            (self.batch_sum - before.batch_sum) / count
        } else {
            0.0
        }
    }
}
