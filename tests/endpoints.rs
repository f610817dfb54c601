//! Endpoints and EndpointSlices end to end on a real node with containers:
//! a Service's Endpoints follow its pods, their readiness and their count;
//! a named target port is resolved from the pods; hand-written Endpoints of
//! a Service without a selector stay (and are mirrored into a slice); the
//! `kubernetes` Service points at the API. Needs root and `make images`.

mod fixtures;

use std::time::{Duration, Instant};

use serde_json::Value;

use fixtures::{image, step, wait_for, Cluster};

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["sh", "-c", "touch /tmp/ready && exec httpd -f -p 8080 -h /"]
        ports:
        - {name: web, containerPort: 8080}
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {team: blue}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: web}
"#;

fn get(c: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&args)).unwrap()
}

/// The ready and not-ready IPs of an Endpoints object (all subsets), and its ports.
fn addresses(ep: &Value) -> (Vec<String>, Vec<String>, Vec<Value>) {
    let (mut ready, mut not_ready, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    for s in ep["subsets"].as_array().into_iter().flatten() {
        let ips = |field: &str| -> Vec<String> {
            s[field].as_array().into_iter().flatten().map(|a| a["ip"].as_str().unwrap().to_string()).collect()
        };
        ready.extend(ips("addresses"));
        not_ready.extend(ips("notReadyAddresses"));
        ports.extend(s["ports"].as_array().cloned().unwrap_or_default());
    }
    ready.sort();
    not_ready.sort();
    ports.dedup();
    (ready, not_ready, ports)
}

/// The IPs of the running web pods, by name.
fn pod_ips(c: &Cluster) -> Vec<(String, String)> {
    let pods = get(c, &["pods", "-l", "app=web"]);
    let mut out: Vec<(String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.into(), p["status"]["podIP"].as_str()?.into())))
        .collect();
    out.sort();
    out
}

fn web_endpoints(c: &Cluster) -> Option<Value> {
    let out = c.cli(&["get", "endpoints", "web", "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn web_slices(c: &Cluster) -> Vec<Value> {
    get(c, &["endpointslices", "-l", "kubernetes.io/service-name=web"])["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn endpoints_follow_pods_readiness_and_the_service() {
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);

    step("a Deployment behind a Service with a named target port: both pods ready in the Endpoints, on 8080");
    let out = c.apply(WEB);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ips = wait_for("both pods in the Endpoints", Duration::from_secs(90), || {
        let pods = pod_ips(&c);
        let ep = web_endpoints(&c)?;
        let (ready, not_ready, _) = addresses(&ep);
        let mut want: Vec<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
        want.sort();
        (pods.len() == 2 && ready == want && not_ready.is_empty()).then_some(pods)
    });
    let ep = web_endpoints(&c).unwrap();
    assert_eq!(addresses(&ep).2, [serde_json::json!({"name": "http", "port": 8080, "protocol": "TCP"})]);
    assert_eq!(ep["metadata"]["labels"]["team"], "blue", "the Service's labels are copied");
    let addr = &ep["subsets"][0]["addresses"][0];
    assert_eq!((&addr["targetRef"]["kind"], &addr["nodeName"]), (&serde_json::json!("Pod"), &serde_json::json!("n1")));

    step("its EndpointSlice: owned by the Service, both endpoints ready, the same port");
    let svc = get(&c, &["svc", "web"]);
    let slices = web_slices(&c);
    assert_eq!(slices.len(), 1, "{slices:?}");
    let s = &slices[0];
    assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], svc["metadata"]["uid"]);
    assert_eq!(s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    assert_eq!((&s["addressType"], &s["ports"][0]["port"]), (&serde_json::json!("IPv4"), &serde_json::json!(8080)));
    let ready: Vec<bool> =
        s["endpoints"].as_array().unwrap().iter().map(|e| e["conditions"]["ready"].as_bool().unwrap()).collect();
    assert_eq!(ready, [true, true]);
    let table = c.ok(&["get", "endpointslices"]);
    assert!(table.starts_with("NAME") && table.contains("ADDRESSTYPE") && table.contains("8080"), "{table}");

    step("a pod failing its readiness probe moves to notReadyAddresses within its probe period");
    let (failing, failing_ip) = ips[0].clone();
    c.ok(&["exec", &failing, "--", "rm", "/tmp/ready"]);
    let start = Instant::now();
    wait_for("the pod to leave the ready addresses", Duration::from_secs(30), || {
        let (ready, not_ready, _) = addresses(&web_endpoints(&c)?);
        (not_ready == [failing_ip.clone()] && ready == [ips[1].1.clone()]).then_some(())
    });
    let took = start.elapsed();
    eprintln!("not-ready reflected in the Endpoints after {took:?}");
    assert!(took < Duration::from_secs(5), "period 1 s, failureThreshold 1: took {took:?}");
    c.ok(&["exec", &failing, "--", "touch", "/tmp/ready"]);
    wait_for("the pod to be ready again", Duration::from_secs(30), || {
        let (ready, not_ready, _) = addresses(&web_endpoints(&c)?);
        (ready.len() == 2 && not_ready.is_empty()).then_some(())
    });

    step("scaling to 3 and to 1: the Endpoints follow");
    for n in [3usize, 1] {
        c.ok(&["scale", "deployment", "web", "--replicas", &n.to_string()]);
        wait_for(&format!("{n} ready addresses"), Duration::from_secs(60), || {
            let pods = pod_ips(&c);
            let (ready, _, _) = addresses(&web_endpoints(&c)?);
            let mut want: Vec<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
            want.sort();
            (pods.len() == n && ready == want).then_some(())
        });
    }

    step("deleting the Service deletes its Endpoints and its slices");
    c.ok(&["delete", "service", "web"]);
    wait_for("Endpoints and slices gone", Duration::from_secs(30), || {
        (web_endpoints(&c).is_none() && web_slices(&c).is_empty()).then_some(())
    });

    step("a Service without a selector keeps its hand-written Endpoints, mirrored into a slice");
    // The Endpoints come first: written before their Service, they are no leftovers.
    let manual = r#"apiVersion: v1
kind: Endpoints
metadata:
  name: ext
subsets:
- addresses: [{ip: 192.0.2.10}]
  ports: [{name: db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  ports:
  - {name: db, port: 5432}
"#;
    let out = c.apply(manual);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let slice = wait_for("the mirrored slice", Duration::from_secs(30), || {
        let items = get(&c, &["endpointslices", "-l", "kubernetes.io/service-name=ext"])["items"].clone();
        items.as_array().and_then(|a| a.first().cloned())
    });
    assert_eq!(slice["endpoints"][0]["addresses"][0], "192.0.2.10");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    let ep = get(&c, &["endpoints", "ext"]);
    assert_eq!(addresses(&ep).0, ["192.0.2.10"], "hand-written Endpoints are left as they are");

    step("the kubernetes Service's Endpoints point at the API");
    ensure_kubernetes_service(&c);
    let api = c.nodes[0].api_addr.clone();
    let (ip, port) = api.rsplit_once(':').unwrap();
    let want = serde_json::json!({"name": "https", "port": port.parse::<u16>().unwrap(), "protocol": "TCP"});
    wait_for("the kubernetes Endpoints", Duration::from_secs(30), || {
        let out = c.cli(&["get", "endpoints", "kubernetes", "-o", "json"]);
        let ep: Value = serde_json::from_slice(&out.stdout).ok()?;
        (addresses(&ep).0 == [ip] && addresses(&ep).2 == [want.clone()]).then_some(())
    });
    let slice = get(&c, &["endpointslices", "kubernetes"]);
    assert_eq!(slice["endpoints"][0]["addresses"][0], ip);
}

/// Create the `kubernetes` Service unless `init` made it.
fn ensure_kubernetes_service(c: &Cluster) {
    if !c.cli(&["get", "svc", "kubernetes"]).status.success() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: kubernetes\nspec:\n  ports:\n  - {name: https, port: 443, targetPort: 6443}\n";
        let out = c.apply(svc);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_kubernetes_service_lists_every_control_plane_api_and_no_worker() {
    let mut c = Cluster::init(&[]);
    ensure_kubernetes_service(&c);
    c.join("n2", true);
    c.join("w1", false);
    // Every node's API is on 127.0.0.1 with its own port: one subset per port.
    let mut want: Vec<(String, u64)> = c.nodes[..2]
        .iter()
        .map(|n| {
            let (ip, port) = n.api_addr.rsplit_once(':').unwrap();
            (ip.to_string(), port.parse().unwrap())
        })
        .collect();
    want.sort();
    let got = wait_for("both control-plane APIs in the Endpoints", Duration::from_secs(30), || {
        let out = c.cli(&["get", "endpoints", "kubernetes", "-o", "json"]);
        let ep: Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut got: Vec<(String, u64)> = ep["subsets"]
            .as_array()?
            .iter()
            .flat_map(|s| {
                let port = s["ports"][0]["port"].as_u64().unwrap_or(0);
                assert_eq!(s["ports"][0]["name"], "https");
                s["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |a| (a["ip"].as_str().unwrap().to_string(), port))
            })
            .collect();
        got.sort();
        (got == want).then_some(got)
    });
    assert_eq!(got.len(), 2, "the worker's API is not listed");
    let slices = get(&c, &["endpointslices", "-l", "kubernetes.io/service-name=kubernetes"]);
    let mut ports: Vec<u64> =
        slices["items"].as_array().unwrap().iter().map(|s| s["ports"][0]["port"].as_u64().unwrap()).collect();
    ports.sort();
    assert_eq!(ports, want.iter().map(|(_, p)| *p).collect::<Vec<_>>(), "one slice per API port");
}
