//! Group commit for posted messages. Sends are queued to writer tasks; each writer takes
//! everything queued (up to `MAX_BATCH`), commits it as one transaction (one fsync),
//! then publishes the accepted messages in order and answers each sender. A chat always
//! maps to the same writer, so its messages are committed and pushed in `seq` order,
//! and the work cannot be cancelled between commit and publish by a
//! client that disconnects: the writer owns it. The writer also holds the chat order
//! stripes of its batch from before the commit until after the publish.

use std::hash::{BuildHasher, RandomState};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbError, NewMessage, PostOutcome};
use crate::domain::UserId;
use crate::realtime::Publisher;
use crate::views::MessageView;
use crate::writes::ChatOrder;
use std::sync::Arc;

/// Sends committed together at most.
const MAX_BATCH: usize = 512;
/// Sends waiting per writer before senders wait for room.
const QUEUE: usize = 4096;

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<Posted, DbError>>,
}

/// What a sender is told. The message's view is built once, for the push and the answer.
pub enum Posted {
    /// Stored with the next `seq`, and published.
    Created(MessageView),
    /// A retry of an earlier send with the same `clientMessageId`: the original.
    Existing(MessageView),
    NotMember,
    /// `replyTo` names no message of this chat.
    BadReply,
}

/// The front of the writers: cheap to share, one queue per writer.
pub struct Poster {
    queues: Vec<mpsc::Sender<Job>>,
    hasher: RandomState,
}

impl Poster {
    /// Starts `writers` writers. PostgreSQL's are tasks on `runtime`, committing several
    /// batches in parallel. SQLite has one writer connection, so one writer, on a thread
    /// of its own where the connection's work runs in place (`db::blocking`): under load
    /// it goes from batch to batch without handing off to another thread.
    pub fn start(
        db: Db,
        publisher: Publisher,
        order: Arc<ChatOrder>,
        writers: usize,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        let in_place = matches!(db, Db::Sqlite { .. });
        let mut queues = Vec::new();
        for _ in 0..writers.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            let task = write_loop(db.clone(), publisher.clone(), order.clone(), rx);
            if in_place {
                let thread = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                std::thread::Builder::new().name("missive-writer".into()).spawn(move || {
                    crate::db::run_in_place_on_this_thread();
                    thread.block_on(task);
                })?;
            } else {
                runtime.spawn(task);
            }
            queues.push(tx);
        }
        Ok(Self { queues, hasher: RandomState::new() })
    }

    /// Commits `message` (with others queued at the same time) and publishes it if it
    /// was accepted; resolves once both are done.
    pub async fn post(&self, message: NewMessage) -> Result<Posted, DbError> {
        let i = self.hasher.hash_one(&message.chat_id) as usize % self.queues.len();
        let (reply, answer) = oneshot::channel();
        let stopped = || DbError::Unavailable("the message writer stopped".into());
        self.queues[i].send(Job { message, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_loop(db: Db, publisher: Publisher, order: Arc<ChatOrder>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let started = std::time::Instant::now();
        let batch: Vec<NewMessage> = jobs.iter().map(|j| j.message.clone()).collect();
        // Other chat-scoped writes (edits, reads, membership) take the same stripes, so
        // none of their events can land between a message's commit and its push.
        let _order = order.lock_all(batch.iter().map(|m| &m.chat_id)).await;
        metrics::histogram!("missive_post_batch_size").record(batch.len() as f64);
        let written = db.post_messages(batch).await;
        metrics::histogram!("missive_post_commit_seconds").record(started.elapsed().as_secs_f64());
        match written {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let posted = match outcome {
                        PostOutcome::Created { message, members } => {
                            let view = MessageView::written(message, &job.message.attachments);
                            let members: Vec<(UserId, i64)> =
                                members.into_iter().map(|(u, read)| (UserId::from_trusted(u), read)).collect();
                            publisher.publish_new_message(&job.message.chat_id, &view, &members);
                            Posted::Created(view)
                        }
                        PostOutcome::Existing(original) => Posted::Existing(MessageView::from(original)),
                        PostOutcome::NotMember => Posted::NotMember,
                        PostOutcome::BadReply => Posted::BadReply,
                    };
                    let _ = job.reply.send(Ok(posted));
                }
            }
            Err(e) => {
                let text = e.to_string();
                let unavailable = matches!(e, DbError::Unavailable(_));
                for job in jobs.drain(..) {
                    let err =
                        if unavailable { DbError::Unavailable(text.clone()) } else { DbError::Batch(text.clone()) };
                    let _ = job.reply.send(Err(err));
                }
            }
        }
        metrics::histogram!("missive_post_batch_seconds").record(started.elapsed().as_secs_f64());
    }
}
