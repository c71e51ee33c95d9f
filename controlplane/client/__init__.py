"""What every component but the apiserver uses to talk to the API: REST client, informers, queues."""
