# The local cluster's network: a bridge in the root namespace and one
# network namespace per node, whose end of a veth is named ib0; the node
# names in /etc/hosts. Sourced, never run.

add_hosts() {
  remove_hosts
  local i
  for i in $(seq 1 "$NODES"); do
    echo "$(node_addr "$i") node$i $HOSTS_MARK"
  done >>/etc/hosts
}

remove_hosts() {
  if grep -q "$HOSTS_MARK" /etc/hosts 2>/dev/null; then
    # /etc/hosts may be a bind mount: rewrite in place rather than replace
    # it (which also keeps its mode and owner).
    local kept
    kept=$(grep -v "$HOSTS_MARK" /etc/hosts || true)
    printf '%s\n' "$kept" >/etc/hosts
  fi
}

make_network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$CTL_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local i
  for i in $(seq 1 "$NODES"); do
    add_host_ns "$NODE_NS$i" "$NODE_LINK$i" "$(node_addr "$i")" ib0
  done
  make_login_network
}

# `add_host_ns NS HOST_END ADDRESS NAME`: a namespace on the bridge whose
# interface is NAME with ADDRESS, its default route through the bridge.
add_host_ns() {
  local ns=$1 host_end=$2 addr=$3 name=$4
  local node_end="$host_end-x"
  ip netns add "$ns"
  ip link add "$host_end" type veth peer name "$node_end"
  ip link set "$host_end" master "$BRIDGE"
  ip link set "$host_end" up
  ip link set "$node_end" netns "$ns"
  nsenter --net="/var/run/netns/$ns" ip link set "$node_end" name "$name"
  nsenter --net="/var/run/netns/$ns" ip addr add "$addr/24" dev "$name"
  nsenter --net="/var/run/netns/$ns" ip link set "$name" up
  nsenter --net="/var/run/netns/$ns" ip link set lo up
  nsenter --net="/var/run/netns/$ns" ip route add default via "$CTL_ADDR" 2>/dev/null || true
}

# Every namespace and link this cluster made, by their names' prefixes
# (another release's cluster, in a slot of its own, is left alone).
remove_network() {
  has_login && remove_login_network
  local ns link
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NODE_NS[0-9]+\$" || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$NODE_LINK[0-9]+(-x)?\$" || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
}

# Kills every process left in the node namespaces (job steps a stopped
# slurmd left behind), so nothing outlives the cluster.
kill_namespace_processes() {
  local ns p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NODE_NS[0-9]+\$" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
  done
}
