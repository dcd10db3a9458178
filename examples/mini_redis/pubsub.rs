//! Pub/sub: channels, their subscribers, and the output-buffer limit that disconnects a
//! subscriber that does not read (Redis' `client-output-buffer-limit pubsub 32mb 8mb 60`).

use std::collections::{HashMap, HashSet};

use evloop::{Loop, TcpStream};

use super::resp;

/// When a subscriber's queued output gets it disconnected.
#[derive(Clone, Copy, Debug)]
pub struct OutputLimit {
    /// Past this many queued bytes, at once.
    pub hard: usize,
    /// Past this many queued bytes for `soft_ms` in a row.
    pub soft: usize,
    /// See `soft`.
    pub soft_ms: u64,
}

impl Default for OutputLimit {
    fn default() -> Self {
        OutputLimit { hard: 32 << 20, soft: 8 << 20, soft_ms: 60_000 }
    }
}

#[derive(Default)]
struct Subscriber {
    channels: HashSet<Vec<u8>>,
    /// Since when (loop time) its queue has been over the soft limit.
    over_soft_since: Option<u64>,
}

/// Who listens to what.
#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Vec<u8>, HashSet<TcpStream>>,
    subscribers: HashMap<TcpStream, Subscriber>,
    /// See [`OutputLimit`].
    pub limit: OutputLimit,
}

impl PubSub {
    /// Whether `client` is in subscribed mode (at least one channel).
    pub fn is_subscribed(&self, client: TcpStream) -> bool {
        // Asked before every command: no hashing while nobody subscribes.
        !self.subscribers.is_empty() && self.subscribers.contains_key(&client)
    }

    /// How many channels `client` listens to.
    pub fn count(&self, client: TcpStream) -> usize {
        self.subscribers.get(&client).map_or(0, |s| s.channels.len())
    }

    /// Subscribes `client` to `channel`; returns its channel count.
    pub fn subscribe(&mut self, client: TcpStream, channel: &[u8]) -> usize {
        let sub = self.subscribers.entry(client).or_default();
        sub.channels.insert(channel.to_vec());
        self.channels.entry(channel.to_vec()).or_default().insert(client);
        sub.channels.len()
    }

    /// Unsubscribes `client` from `channel`; returns its channel count.
    pub fn unsubscribe(&mut self, client: TcpStream, channel: &[u8]) -> usize {
        if let Some(set) = self.channels.get_mut(channel) {
            set.remove(&client);
            if set.is_empty() {
                self.channels.remove(channel);
            }
        }
        let Some(sub) = self.subscribers.get_mut(&client) else { return 0 };
        sub.channels.remove(channel);
        let left = sub.channels.len();
        if left == 0 {
            self.subscribers.remove(&client);
        }
        left
    }

    /// The channels of `client`.
    pub fn channels_of(&self, client: TcpStream) -> Vec<Vec<u8>> {
        self.subscribers.get(&client).map_or_else(Vec::new, |s| s.channels.iter().cloned().collect())
    }

    /// Forgets `client` (it disconnected).
    pub fn remove(&mut self, client: TcpStream) {
        for channel in self.channels_of(client) {
            self.unsubscribe(client, &channel);
        }
    }

    /// Sends `message` to the subscribers of `channel`; returns how many got it. A subscriber
    /// whose queue passes the limits is closed and forgotten.
    pub fn publish<S>(&mut self, lp: &mut Loop<S>, channel: &[u8], message: &[u8]) -> usize {
        let Some(set) = self.channels.get(channel) else { return 0 };
        let mut frame = Vec::with_capacity(message.len() + channel.len() + 32);
        resp::array(&mut frame, 3);
        resp::bulk(&mut frame, b"message");
        resp::bulk(&mut frame, channel);
        resp::bulk(&mut frame, message);
        let now = lp.now();
        let mut victims = Vec::new();
        let receivers: Vec<TcpStream> = set.iter().copied().collect();
        for client in &receivers {
            // Above the high-water mark the write still queues: the limits below bound it.
            let queued = client.write(lp, &frame).and_then(|_| client.write_queue_size(lp));
            let over = match queued {
                Ok(q) if q > self.limit.hard => true,
                Ok(q) if q > self.limit.soft => {
                    let sub = self.subscribers.get_mut(client);
                    let since = sub.map_or(now, |s| *s.over_soft_since.get_or_insert(now));
                    now.saturating_sub(since) >= self.limit.soft_ms
                }
                Ok(_) => {
                    if let Some(sub) = self.subscribers.get_mut(client) {
                        sub.over_soft_since = None;
                    }
                    false
                }
                Err(_) => true,
            };
            if over {
                victims.push(*client);
            }
        }
        for client in victims {
            log::info!("{client:?}: pub/sub output buffer over its limit, closing");
            self.remove(client);
            let _ = client.close(lp);
        }
        receivers.len()
    }
}
