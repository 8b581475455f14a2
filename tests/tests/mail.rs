//! Email through SMTP (lettre) to a local fake SMTP server that records each envelope and
//! message: what production sends, minus a real mail server, which these machines lack.

use std::sync::{Arc, Mutex};

use humanproof_control_plane::mail::{Email, Mailer};
use humanproof_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One accepted message: envelope sender, recipients and the raw data.
#[derive(Debug, Clone, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server: greets, accepts EHLO, MAIL, RCPT, DATA and QUIT, and answers 250
/// to anything else, as a permissive relay would.
async fn fake_smtp() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let received = inbox.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let received = received.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake.smtp ESMTP\r\n").await.unwrap();
                let mut current = Received::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-fake.smtp\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        current = Received {
                            from: line[10..].trim().to_owned(),
                            ..Received::default()
                        };
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        current.to.push(line[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            current.data.push_str(&data);
                            current.data.push('\n');
                        }
                        received.lock().unwrap().push(std::mem::take(&mut current));
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (url, inbox)
}

#[tokio::test]
async fn messages_go_out_over_smtp() {
    let (url, inbox) = fake_smtp().await;
    let mailer = Mailer::smtp(&url, "HumanProof <no-reply@humanproof.example>").unwrap();
    let email = Email {
        to: "ada@example.com".into(),
        subject: "Hello".into(),
        body: "A line of text.".into(),
        reply_to: Some("grace@example.org".into()),
    };
    mailer.send(&email).await.unwrap();
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].from, "<no-reply@humanproof.example>");
    assert_eq!(received[0].to, ["<ada@example.com>"]);
    assert!(received[0].data.contains("Subject: Hello"));
    assert!(received[0].data.contains("A line of text."));
    assert!(received[0].data.contains("Reply-To: grace@example.org"));

    // A refused connection is an error the caller sees, not a panic.
    let nowhere = Mailer::smtp("smtp://127.0.0.1:9", "no-reply@humanproof.example").unwrap();
    assert!(nowhere.send(&email).await.is_err());
    assert!(Mailer::smtp(&url, "not an address").is_err());
}

on_both_databases! {
    async fn sign_up_sends_the_verification_link_by_smtp(world: World) {
        let (url, inbox) = fake_smtp().await;
        let mailer = Mailer::smtp(&url, "no-reply@humanproof.example").unwrap();
        let state = world.state().with(|state| state.mailer = mailer);
        let browser = Browser::new(&serve_control_plane(state).await);
        let fields = [("email", "grace@example.com"), ("password", "correct horse battery")];
        browser.post("/sign-up", &fields).await.expect(200);
        let received = inbox.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].to, ["<grace@example.com>"]);
        assert!(received[0].data.contains("/verify-email?token="), "{}", received[0].data);
    }
}
