"""The node network proxy: services into iptables/IPVS, routes between nodes, cluster DNS."""
