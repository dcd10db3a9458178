use evloop::{Loop, RunMode, UdpSocket};
fn main() {
    let mut lp = Loop::with_state(Vec::<String>::new()).unwrap();
    let s = UdpSocket::bind(&mut lp, "127.0.0.1:0").unwrap();
    let sa = s.local_addr(&lp).unwrap();
    s.recv_start(&mut lp, |lp, _, d| { lp.state.push(format!("{:?}", d.map(|(a,b,_)| (a.to_vec(), b)))); }).unwrap();
    let p = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let o = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(&mut lp, p.local_addr().unwrap()).unwrap();
    o.send_to(b"stranger", sa).unwrap();
    p.send_to(b"back", sa).unwrap();
    for _ in 0..5 { lp.run(RunMode::NoWait).unwrap(); }
    println!("{:?}", lp.state);
    s.disconnect(&mut lp).unwrap();
    println!("local after disconnect {:?}", s.local_addr(&lp));
    o.send_to(b"welcome", sa).unwrap();
    for _ in 0..5 { lp.run(RunMode::NoWait).unwrap(); }
    println!("{:?}", lp.state);
}
