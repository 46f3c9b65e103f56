//! An echo WebSocket server for the Autobahn|Testsuite (run by `kosoku` in CI): every text
//! and binary message comes back as it was. It is not part of the release binary; it
//! frames exactly as `/messaging` does: it reads through the same `realtime::wire` (stream
//! limits, reassembly, close codes) and writes through the same connection writer
//! (`realtime::writer`), so what the suite finds here is true of the real socket.
//!
//! `cargo run --release --example autobahn_echo -- [ADDRESS] [MAX_MESSAGE_BYTES]`
//! (defaults: 127.0.0.1:9001 and the server's own frame limit).

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use missive::config::Settings;
use missive::realtime::wire::{self, Frames, Inbound};
use missive::realtime::writer::{self, Own};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let max: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| std::io::Error::other(format!("MAX_MESSAGE_BYTES {n:?}: {e}")))?,
        None => Settings::default().max_frame_bytes,
    };
    let server = HttpServer::new(move || App::new().app_data(web::Data::new(max)).default_service(web::to(echo)))
        .workers(1)
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("autobahn echo on ws://{bound}/ (messages up to {max} bytes)");
    }
    server.run().await
}

async fn echo(req: HttpRequest, body: web::Payload, max: web::Data<usize>) -> actix_web::Result<HttpResponse> {
    // Read through `wire::Frames` and written through the connection writer, as
    // `/messaging` does (routes/ws.rs).
    let (response, _unused, stream) = actix_ws::handle(&req, body)?;
    let (head, inbound) = response.into_parts();
    let (writer, mouth) = writer::standalone(inbound);
    let mut frames = Frames::new(stream, **max);
    actix_web::rt::spawn(async move {
        let ending = loop {
            let sent = match frames.recv().await {
                None => return,
                Some(Ok(Inbound::Text(text))) => mouth.send(Own::Text(text)).await,
                Some(Ok(Inbound::Binary(bytes))) => mouth.send(Own::Binary(bytes)).await,
                Some(Ok(Inbound::Ping(bytes))) => mouth.send(Own::Pong(bytes)).await,
                Some(Ok(Inbound::Pong(_) | Inbound::Fragment)) => Ok(()),
                Some(Ok(Inbound::Close(reason))) => break reason,
                Some(Err(e)) => break wire::close_for(&e),
            };
            if sent.is_err() {
                return;
            }
        };
        let _ = mouth.send(Own::Close(ending)).await;
    });
    Ok(head.set_body(writer).map_into_boxed_body())
}
