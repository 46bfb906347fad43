//! Small manifests several test areas audit.

/// A Pod with findings of both severities: hostNetworkSet (danger) on line 7, and warnings.
pub const RISKY_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: risky
  namespace: prod
spec:
  hostNetwork: true
  containers:
    - name: app
      image: nginx:1.27
";

/// Nothing for any default rule to say.
pub const CLEAN: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: prod
data:
  color: blue
";
