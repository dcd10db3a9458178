//! UdpSocket on the simulator: what only a simulated network can pin exactly. Seeded loss,
//! duplication and reordering, link latency, a full socket (the send queue, its bound and
//! its cancellation), ICMP refusal in virtual time, and the per-wakeup cap.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use evloop::sim::{Sim, SimConfig};
use evloop::{is_cancelled, UdpSocket};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A socket at 10.0.0.1:5000 that records the first 4 bytes of each datagram as a number.
fn numbered_receiver(sim: &mut Sim<Vec<u32>>) -> UdpSocket {
    let s = UdpSocket::bind(sim, "10.0.0.1:5000").unwrap();
    s.recv_start(sim, |lp, _, d| {
        let (data, _, _) = d.unwrap();
        lp.state.push(u32::from_be_bytes(data[..4].try_into().unwrap()));
    })
    .unwrap();
    s
}

/// A peer sends datagrams 0..n, one per millisecond; returns the numbers in arrival order.
fn deliver(config: SimConfig, n: u32) -> Vec<u32> {
    let mut sim = Sim::with_config(config, Vec::new());
    let s = numbered_receiver(&mut sim);
    let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
    for i in 0..n {
        peer.send_to(addr("10.0.0.1:5000"), &i.to_be_bytes());
        sim.advance(Duration::from_millis(1)).unwrap();
    }
    sim.advance(Duration::from_millis(100)).unwrap();
    s.close(&mut sim).unwrap();
    sim.run().unwrap();
    std::mem::take(&mut sim.state)
}

#[test]
fn loss_is_seeded_and_at_its_rate() {
    let config = |seed| SimConfig::new().seed(seed).udp_loss(0.2);
    let got = deliver(config(7), 1000);
    assert_eq!(got, deliver(config(7), 1000), "the same seed loses the same datagrams");
    assert_ne!(got, deliver(config(8), 1000), "another seed loses others");
    // 1000 draws at 0.2: 200 expected; 150..250 is more than five standard deviations.
    assert!((750..=850).contains(&got.len()), "{} of 1000 arrived", got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]), "loss alone neither reorders nor duplicates");
    assert_eq!(deliver(SimConfig::new().seed(7), 1000), (0..1000).collect::<Vec<_>>(), "no loss by default");
}

#[test]
fn duplication_is_seeded_and_at_its_rate() {
    let config = |seed| SimConfig::new().seed(seed).udp_duplication(0.1);
    let got = deliver(config(3), 1000);
    assert_eq!(got, deliver(config(3), 1000));
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(unique, (0..1000).collect::<Vec<_>>(), "every datagram, in order, some twice in a row");
    let doubled = got.len() - 1000;
    assert!((60..=140).contains(&doubled), "{doubled} of 1000 duplicated");
}

#[test]
fn reordering_is_seeded_and_at_its_rate() {
    let config = |seed| SimConfig::new().seed(seed).udp_reordering(0.1, Duration::from_millis(20));
    let got = deliver(config(11), 1000);
    assert_eq!(got, deliver(config(11), 1000));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "every datagram once");
    // A held-back datagram is overtaken by the ones sent within its extra delay.
    let overtaken = got.windows(2).filter(|w| w[0] > w[1]).count();
    assert!((40..=140).contains(&overtaken), "{overtaken} inversions");
}

#[test]
fn a_datagram_arrives_one_link_latency_later() {
    let mut sim = Sim::with_config(SimConfig::new().seed(1).latency(Duration::from_millis(5)), Vec::new());
    let s = numbered_receiver(&mut sim);
    let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
    peer.send_to(addr("10.0.0.1:5000"), &42u32.to_be_bytes());
    sim.advance(Duration::from_millis(4)).unwrap();
    assert!(sim.state.is_empty(), "not before 5 ms");
    sim.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(sim.state, [42]);
    // And back, another 5 ms.
    s.send_to(&mut sim, b"back", peer.addr()).unwrap();
    sim.advance(Duration::from_millis(4)).unwrap();
    assert!(peer.received().is_empty());
    sim.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(peer.received(), [(b"back".to_vec(), addr("10.0.0.1:5000"))]);
}

#[test]
fn a_full_socket_queues_in_order_and_reports_each_send() {
    let mut sim = Sim::new(1, Vec::<String>::new());
    let s = UdpSocket::bind(&mut sim, "10.0.0.1:0").unwrap();
    let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
    let to = peer.addr();
    sim.block_udp_sends(1);
    assert!(!s.is_active(&sim));
    for name in ["a", "bb", "ccc"] {
        s.send_to_with(&mut sim, name.as_bytes(), to, move |lp, r| lp.state.push(format!("{name}: {r:?}")))
            .unwrap();
    }
    // The first found no room; the others queue behind it, in order.
    assert_eq!((s.send_queue_count(&sim).unwrap(), s.send_queue_size(&sim).unwrap()), (3, 6));
    assert!(s.is_active(&sim) && sim.alive(), "queued sends keep the socket active");
    assert_eq!(s.try_send_to(&mut sim, b"d", to).unwrap_err().kind(), ErrorKind::WouldBlock, "never queues");
    sim.run().unwrap();
    assert_eq!(sim.state, ["a: Ok(())", "bb: Ok(())", "ccc: Ok(())"]);
    let got: Vec<Vec<u8>> = peer.received().into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
    assert_eq!(s.send_queue_count(&sim).unwrap(), 0);
    assert!(!s.is_active(&sim));
}

#[test]
fn the_send_queue_is_bounded() {
    let mut sim = Sim::new(1, ());
    let s = UdpSocket::bind(&mut sim, "10.0.0.1:0").unwrap();
    let to = sim.udp_peer(addr("10.0.0.2:0")).unwrap().addr();
    s.set_send_queue_limit(&mut sim, 10).unwrap();
    sim.block_udp_sends(1);
    s.send_to(&mut sim, &[1; 8], to).unwrap();
    let err = s.send_to(&mut sim, &[2; 8], to).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("send queue full"), "{err}");
    assert_eq!(s.send_queue_size(&sim).unwrap(), 8, "the refused datagram is not queued");
    s.send_to(&mut sim, &[3; 2], to).unwrap();
    assert_eq!(s.send_queue_count(&sim).unwrap(), 2, "up to the bound exactly");
}

#[test]
fn close_cancels_queued_sends() {
    let mut sim = Sim::new(1, Vec::new());
    let s = UdpSocket::bind(&mut sim, "10.0.0.1:0").unwrap();
    let to = sim.udp_peer(addr("10.0.0.2:0")).unwrap().addr();
    sim.block_udp_sends(1);
    for _ in 0..2 {
        s.send_to_with(&mut sim, b"x", to, |lp, r| lp.state.push(r.map_err(|e| is_cancelled(&e)))).unwrap();
    }
    s.close(&mut sim).unwrap();
    assert!(sim.state.is_empty(), "never inside close");
    sim.run().unwrap();
    assert_eq!(sim.state, [Err(true), Err(true)]);
}

#[test]
fn a_connected_socket_hears_of_a_closed_port_one_round_trip_later() {
    let mut sim = Sim::with_config(SimConfig::new().seed(1).latency(Duration::from_millis(3)), Vec::new());
    let s = UdpSocket::bind(&mut sim, "10.0.0.1:0").unwrap();
    s.recv_start(&mut sim, |lp, _, d| lp.state.push(d.map(|(b, _, _)| b.to_vec()).map_err(|e| e.kind())))
        .unwrap();
    let dead = addr("10.0.0.9:99");
    s.connect(&mut sim, dead).unwrap();
    s.send(&mut sim, b"anyone?").unwrap();
    sim.advance(Duration::from_millis(5)).unwrap();
    assert!(sim.state.is_empty());
    sim.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(sim.state, [Err(ErrorKind::ConnectionRefused)]);
    // Reception goes on: something there now answers.
    let late = sim.udp_peer(dead).unwrap();
    late.send_to(s.local_addr(&sim).unwrap(), b"here");
    sim.advance(Duration::from_millis(3)).unwrap();
    assert_eq!(sim.state[1], Ok(b"here".to_vec()));
    // An unconnected socket hears nothing of it, as on Linux.
    let quiet = UdpSocket::bind(&mut sim, "10.0.0.1:0").unwrap();
    quiet
        .recv_start(&mut sim, |lp, _, d| lp.state.push(d.map(|(b, _, _)| b.to_vec()).map_err(|e| e.kind())))
        .unwrap();
    quiet.send_to(&mut sim, b"anyone?", addr("10.0.0.9:98")).unwrap();
    sim.advance(Duration::from_millis(20)).unwrap();
    assert_eq!(sim.state.len(), 2);
}

#[test]
fn a_burst_past_the_per_wakeup_cap_is_delivered_without_a_new_arrival() {
    // Edge-triggered: the 65th datagram raises no new edge. The loop must come back by
    // itself (its `again` list), or the rest waits for a datagram that never comes.
    let mut sim = Sim::new(1, Vec::new());
    let _s = numbered_receiver(&mut sim);
    let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
    for i in 0..200u32 {
        peer.send_to(addr("10.0.0.1:5000"), &i.to_be_bytes());
    }
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_multicast_group_reaches_its_members_on_its_port() {
    let mut sim = Sim::new(1, Vec::new());
    let group = "239.1.2.3".parse().unwrap();
    let member = UdpSocket::bind(&mut sim, "0.0.0.0:6000").unwrap();
    member.recv_start(&mut sim, |lp, _, d| lp.state.push(d.unwrap().0.to_vec())).unwrap();
    let outsider = UdpSocket::bind(&mut sim, "10.0.0.1:6000").unwrap();
    outsider.recv_start(&mut sim, |lp, _, d| lp.state.push(d.unwrap().0.to_vec())).unwrap();
    member.join_multicast_v4(&mut sim, group, "0.0.0.0".parse().unwrap()).unwrap();
    let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
    peer.send_to(SocketAddr::new(group.into(), 6000), b"to the group");
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state, [b"to the group".to_vec()], "the member only");
    member.leave_multicast_v4(&mut sim, group, "0.0.0.0".parse().unwrap()).unwrap();
    peer.send_to(SocketAddr::new(group.into(), 6000), b"again");
    sim.run_until_idle().unwrap();
    assert_eq!(sim.state.len(), 1, "left: nothing more");
}

#[test]
fn an_echo_under_every_udp_fault_traces_the_same_twice() {
    let config = SimConfig::new()
        .seed(99)
        .latency(Duration::from_millis(2))
        .udp_loss(0.1)
        .udp_duplication(0.1)
        .udp_reordering(0.2, Duration::from_millis(10));
    let trace = evloop::sim::check_determinism_with(config, |sim: &mut Sim<Vec<u32>>| {
        let server = UdpSocket::bind(sim, "10.0.0.1:7").unwrap();
        server
            .recv_start(sim, |lp, s, d| {
                let (data, from, _) = d.unwrap();
                s.send_to(lp, data, from).unwrap();
            })
            .unwrap();
        let peer = sim.udp_peer(addr("10.0.0.2:0")).unwrap();
        for i in 0..100u32 {
            peer.send_to(addr("10.0.0.1:7"), &i.to_be_bytes());
        }
        sim.advance(Duration::from_millis(50)).unwrap();
        sim.state =
            peer.received().iter().map(|(d, _)| u32::from_be_bytes(d[..4].try_into().unwrap())).collect();
        server.close(sim).unwrap();
        sim.run().unwrap();
    })
    .unwrap();
    let lost = trace.iter().filter(|e| e.kind == "udp: lost").count();
    let sent = trace.iter().filter(|e| e.kind == "udp send").count();
    assert!(lost > 0 && sent > 0, "{lost} lost, {sent} echoed");
}
