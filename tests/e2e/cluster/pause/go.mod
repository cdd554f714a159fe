module github.com/schemahook/schemahook/tests/e2e/cluster/pause

go 1.24
