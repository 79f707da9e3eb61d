module vbake.org/agent

go 1.19
