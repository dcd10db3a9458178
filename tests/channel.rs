//! Channels: messages from other threads (or a test) to a callback on the loop thread, in
//! order, batched per wakeup, bounded or not, with the end reported once.

use std::sync::mpsc::{SendError, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use evloop::sim::Sim;
use evloop::{Channel, Loop, RunMode};

#[test]
fn messages_from_threads_arrive_in_order_then_the_end_once() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let (tx, _ch) = Channel::new(&mut lp, |lp, _, msg: Option<(u8, u32)>| lp.state.push(msg));
    let producers: Vec<_> = (0..4u8)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || (0..1000).for_each(|i| tx.send((p, i)).unwrap()))
        })
        .collect();
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap(), "the channel keeps nothing alive once it ended");
    producers.into_iter().for_each(|p| p.join().unwrap());
    let (end, messages) = lp.state.split_last().unwrap();
    assert_eq!(*end, None, "the end is reported last, once");
    assert_eq!(messages.len(), 4000);
    for p in 0..4u8 {
        let from_p: Vec<u32> = messages.iter().flatten().filter(|m| m.0 == p).map(|m| m.1).collect();
        assert_eq!(from_p, (0..1000).collect::<Vec<_>>(), "each sender's messages in order");
    }
}

/// One wakeup delivers what was queued, up to 1,024 messages per pass; the rest follow on
/// the next iterations, in order, nothing lost.
#[test]
fn a_burst_is_delivered_in_passes_of_at_most_1024_in_order() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    let (tx, _ch) = Channel::new(&mut lp, |lp, _, msg: Option<u32>| lp.state.extend(msg));
    (0..3000).for_each(|i| tx.send(i).unwrap());
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, (0..1024).collect::<Vec<_>>(), "one pass, capped");
    lp.run(RunMode::NoWait).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, (0..3000).collect::<Vec<_>>());
    assert!(lp.alive(), "a sender is still there");
}

#[test]
fn a_bounded_channel_refuses_when_full_and_takes_again_once_drained() {
    let mut lp = Loop::with_state(0usize).unwrap();
    let (tx, _ch) =
        Channel::bounded(&mut lp, 2, |lp, _, msg: Option<u32>| lp.state += msg.is_some() as usize);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))), "full: the message comes back");
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.state, 2);
    tx.try_send(3).unwrap();
    // A blocking send from another thread waits for room, and gets it once the loop drains.
    tx.try_send(4).unwrap();
    let remote = tx.clone();
    let blocked = thread::spawn(move || remote.send(5));
    while lp.state < 5 {
        lp.run(RunMode::Once).unwrap();
    }
    blocked.join().unwrap().unwrap();
    assert_eq!(lp.state, 5);
}

#[test]
fn sending_on_a_closed_channel_or_one_whose_loop_is_gone_hands_the_message_back() {
    let mut lp = Loop::new().unwrap();
    let (tx, ch) = Channel::new(&mut lp, |_, _, _: Option<String>| {});
    ch.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(tx.send("late".into()), Err(SendError("late".to_string())));
    assert!(matches!(tx.try_send("later".into()), Err(TrySendError::Disconnected(m)) if m == "later"));

    let mut lp = Loop::new().unwrap();
    let (tx, _ch) = Channel::bounded(&mut lp, 4, |_, _, _: Option<u8>| {});
    drop(lp);
    assert_eq!(tx.send(7), Err(SendError(7)));
    assert!(ch.close(&mut Loop::new().unwrap()).is_err(), "and its id is refused elsewhere");
}

/// Closing drops what is still queued (nothing leaks) and stops delivery at once, even in
/// the middle of a pass.
#[test]
fn closing_from_the_callback_stops_delivery_and_drops_the_rest() {
    let token = Arc::new(());
    let mut lp = Loop::with_state(0u32).unwrap();
    let (tx, _ch) = Channel::new(&mut lp, |lp, ch, _msg: Option<Arc<()>>| {
        lp.state += 1;
        ch.close(lp).unwrap();
    });
    (0..10).for_each(|_| tx.send(token.clone()).unwrap());
    assert_eq!(Arc::strong_count(&token), 11);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, 1, "no message after the close");
    assert_eq!(Arc::strong_count(&token), 1, "the queued messages were dropped");
    assert!(tx.send(token.clone()).is_err());
}

#[test]
fn an_unreferenced_channel_does_not_keep_the_loop_alive() {
    let mut lp = Loop::new().unwrap();
    let (_tx, ch) = Channel::new(&mut lp, |_, _, _: Option<()>| {});
    assert!(ch.is_active(&lp));
    ch.unref(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// On the simulator the test sends, and the loop delivers in zero virtual time.
#[test]
fn a_test_sends_to_a_simulated_loop() {
    let mut sim = Sim::new(5, Vec::new());
    let (tx, ch) = Channel::new(&mut sim, |lp, _, msg: Option<&str>| lp.state.push(msg));
    tx.send("hello").unwrap();
    tx.send("world").unwrap();
    assert!(sim.state.is_empty(), "callbacks run only inside the loop");
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [Some("hello"), Some("world")]);
    drop(tx);
    sim.run().unwrap();
    assert_eq!(sim.state, [Some("hello"), Some("world"), None]);
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert!(!ch.is_active(&sim) && !ch.is_closing(&sim), "ended: open, inactive");
}
