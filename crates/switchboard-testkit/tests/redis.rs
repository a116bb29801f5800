//! The `Redis` guard itself: it starts, answers commands, dies on SIGKILL and comes back empty
//! on the same port.

use switchboard_testkit::{Redis, Reply};

/// Commands round-trip, and a restart brings back an empty server on the same port.
#[test]
fn redis_runs_commands_and_restarts_empty() {
    let mut redis = Redis::spawn();
    assert!(redis.url().ends_with(&format!(":{}", redis.port())));
    assert_eq!(
        redis.command(&["HSET", "sb:room:{r}:members", "a", "{\"name\":\"é\"}"]),
        Ok(Reply::Integer(1))
    );
    assert_eq!(
        redis.hgetall("sb:room:{r}:members"),
        Ok(vec![("a".to_string(), "{\"name\":\"é\"}".to_string())])
    );
    assert_eq!(
        redis.command(&["HGET", "sb:room:{r}:members", "zz"]),
        Ok(Reply::Bulk(None))
    );
    assert_eq!(
        redis
            .command(&["HGETALL", "sb:room:{r}:members"])
            .map(|r| r.to_json()),
        Ok(r#"["a","{\"name\":\"é\"}"]"#.to_string())
    );
    assert!(matches!(
        redis.command(&["NO-SUCH-COMMAND"]),
        Ok(Reply::Error(_))
    ));

    redis.kill();
    assert!(!redis.is_running());
    assert!(
        redis.command(&["PING"]).is_err(),
        "killed Redis still answers"
    );

    let port = redis.port();
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(
        redis.keys("*"),
        Ok(Vec::new()),
        "a restarted Redis is empty"
    );
}
