module vmdrain.io/e2e/controlplane

go 1.26.0
