"""What every component but the apiserver uses for the API: REST client, informers, queues."""
