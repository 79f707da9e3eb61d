package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

type poweroffReply struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// poweroff handles POWEROFF: kill the commands, stop the engine, sync, unmount the state disk,
// sync, reply and make sure the reply was written. The caller then powers off (see finish).
func (s *session) poweroff() error {
	a := s.a
	a.log.Printf("power-off requested")
	if done := s.killAll(); len(done) > 0 {
		a.log.Printf("power-off: killed %d running command(s)", len(done))
		// Give their EXIT frames a chance to go out before the reply.
		if !waitAll(done, 2*time.Second) {
			a.log.Printf("power-off: some commands did not exit after SIGKILL")
		}
	}
	_ = a.stopEngine("power-off") // logged; powering off ends it anyway
	a.log.Printf("power-off: sync")
	syscall.Sync()
	msg := a.unmountState()
	syscall.Sync()

	reply := poweroffReply{OK: msg == ""}
	if msg != "" {
		reply.Message = msg
	}
	s.out.sendJSON(typePoweroff, 0, reply)
	if !s.out.flush(5 * time.Second) {
		a.log.Printf("power-off: could not write the reply")
	}
	time.Sleep(50 * time.Millisecond)
	return errPoweroff
}

// unmountState unmounts the path given as vbake.state= on the kernel command line, if it is
// mounted. It returns "" on success (or when there is nothing to do), else the reason.
func (a *agent) unmountState() string {
	b, err := os.ReadFile(a.cmdlinePath)
	if err != nil {
		a.log.Printf("power-off: %v", err)
		return ""
	}
	path := cmdlineParam(string(b), "vbake.state")
	if path == "" {
		a.log.Printf("power-off: no vbake.state= on the kernel command line")
		return ""
	}
	mounted, err := isMountPoint(a.mountinfoPath, path)
	if err != nil {
		a.log.Printf("power-off: reading %s: %v; trying to unmount %s anyway", a.mountinfoPath, err, path)
		mounted = true
	}
	if !mounted {
		a.log.Printf("power-off: %s is not mounted", path)
		return ""
	}
	if a.noPoweroff {
		a.log.Printf("power-off: not unmounting %s (--no-poweroff)", path)
		return ""
	}
	// A guest that was to be saved has its state filesystem frozen; unmount needs it thawed.
	if err := freeze(path, ioctlFITHAW); err == nil {
		a.log.Printf("power-off: thawed %s", path)
	}
	a.log.Printf("power-off: unmounting %s", path)
	err = syscall.Unmount(path, 0)
	if err == nil {
		return ""
	}
	a.log.Printf("power-off: unmount %s: %v; syncing and detaching it", path, err)
	msg := fmt.Sprintf("unmount %s: %v", path, err)
	syscall.Sync()
	if derr := syscall.Unmount(path, syscall.MNT_DETACH); derr != nil {
		a.log.Printf("power-off: lazy unmount %s: %v", path, derr)
		msg += fmt.Sprintf("; lazy unmount: %v", derr)
	} else {
		msg += " (detached lazily)"
	}
	return msg
}

// finish turns the result of serve into the process's exit: for a power-off, reboot(POWER_OFF)
// (or exit 0 with --no-poweroff); anything else is an error exit.
func (a *agent) finish(err error) int {
	if err != errPoweroff {
		a.log.Printf("exiting: %v", err)
		return 1
	}
	if a.noPoweroff {
		a.log.Printf("power-off: done (--no-poweroff, exiting)")
		return 0
	}
	a.log.Printf("power-off: reboot(POWER_OFF)")
	err = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	a.log.Printf("power-off: reboot failed: %v", err)
	return 1
}
