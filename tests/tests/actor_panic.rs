//! A panicking handler answers its caller with an internal error; the service lives on.

use tests::{Counter, counter_client, start_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_leaves_the_service_serving() {
    for wire in [false, true] {
        let name = format!("panic-{wire}");
        let service = start_counter(&name, Counter::new()).await;
        let client = counter_client(&name, wire);
        assert_eq!(client.add(1).await.unwrap(), 1);

        let err = client.boom().await.unwrap_err();
        assert_eq!(err.code, 500, "{err}");
        assert!(
            err.detail
                .contains("Counter.Boom panicked: boom on purpose"),
            "{err}"
        );

        // Still serving, and the state is what the handler left when it panicked.
        assert_eq!(client.get().await.unwrap(), 1001);
        assert_eq!(client.add(1).await.unwrap(), 1002);
        let stats = &service.stats()[0];
        assert_eq!((stats.panics, stats.errors), (1, 1));
        service.stop().await;
    }
}
