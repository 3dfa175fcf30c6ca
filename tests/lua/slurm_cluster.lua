-- slurm_cluster: a throwaway Slurm cluster on this host for the tests, from
-- Debian's packages (munge, slurmctld, slurmd): one munged on its own socket
-- and key, one slurmctld and two slurmd "nodes" (n1, n2) on loopback, every
-- port free when picked and every file (state, spool, logs, pid files,
-- configuration) in a folder of the test run, so that two test runs on one
-- machine never meet. Daemons are started in the foreground (-D/-F) and
-- stopped by the PIDs recorded here.
--
--   local C = require "slurm_cluster"
--   if not C.available() then ... skip ... end
--   local c = C.start(dir)              -- raises when it does not come up
--   os.execute(c.env .. " sbatch ...")  -- c.env = "env SLURM_CONF=<dir>/slurm.conf"
--   c:stop()                            -- cancels what is left, stops the daemons
local ffi = require "ffi"

local M = {}

pcall(ffi.cdef, [[
typedef unsigned int lacos_sc_socklen_t;
struct lacos_sc_sockaddr_in { uint16_t sin_family; uint16_t sin_port; uint32_t sin_addr; uint8_t zero[8]; };
int socket(int domain, int type, int protocol);
int bind(int fd, const void *addr, lacos_sc_socklen_t len);
int getsockname(int fd, void *addr, lacos_sc_socklen_t *len);
int close(int fd);
uint16_t ntohs(uint16_t x);
]])

-- Ports the kernel says are free now (bound to port 0, read back, closed).
local function free_ports(n)
  local ports, fds = {}, {}
  for i = 1, n do
    local fd = ffi.C.socket(2, 1, 0)
    assert(fd >= 0, "socket failed")
    local addr = ffi.new("struct lacos_sc_sockaddr_in")
    addr.sin_family = 2
    addr.sin_addr = 0x0100007f
    assert(ffi.C.bind(fd, addr, ffi.sizeof(addr)) == 0, "bind failed")
    local len = ffi.new("lacos_sc_socklen_t[1]", ffi.sizeof(addr))
    ffi.C.getsockname(fd, addr, len)
    ports[i] = ffi.C.ntohs(addr.sin_port)
    fds[i] = fd
  end
  for _, fd in ipairs(fds) do ffi.C.close(fd) end
  return ports
end

local function sh(cmd) local r = os.execute(cmd) return r == 0 or r == true end
local read = require("harness").read
local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end
local function capture(cmd)
  local f = io.popen(cmd .. " 2>&1")
  local s = f:read("*a")
  f:close()
  return s
end
local util = require "lacos.util"
M.q = q

M.PROGRAMS = { "munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo" }

-- The programs are there (make deps installs slurm-wlm and munge).
function M.available()
  for _, p in ipairs(M.PROGRAMS) do
    if not sh(("command -v %s >/dev/null 2>&1 || test -x /usr/sbin/%s"):format(p, p)) then return false, p end
  end
  return true
end

local function prog(p)
  if sh(("command -v %s >/dev/null 2>&1"):format(p)) then return p end
  return "/usr/sbin/" .. p
end

-- Starts `argv_text` (already quoted) in the background with its output in
-- log; returns its pid.
local function spawn(text, log, pidfile)
  sh(("%s > %s 2>&1 < /dev/null & echo $! > %s"):format(text, q(log), q(pidfile)))
  return tonumber((read(pidfile) or ""):match("%d+"))
end

local Cluster = {}
Cluster.__index = Cluster

-- Waits until cond() is true, checking every 0.1 s; false after `limit`
-- seconds (a guard against a hang, not a measurement).
local function await(cond, limit)
  local t0 = util.clock()
  while util.clock() - t0 < limit do
    if cond() then return true end
    util.sleep(0.1)
  end
  return cond()
end
M.await = await

function M.start(dir)
  sh("mkdir -p " .. q(dir .. "/munge") .. " " .. q(dir .. "/state") .. " " .. q(dir .. "/spooln1") .. " " ..
     q(dir .. "/spooln2") .. " " .. q(dir .. "/log"))
  sh("chmod 755 " .. q(dir .. "/munge"))
  local c = setmetatable({ dir = dir, pids = {} }, Cluster)
  -- munge: its own key and socket
  local key = dir .. "/munge/munge.key"
  assert(sh(("dd if=/dev/urandom of=%s bs=1024 count=1 2>/dev/null && chmod 600 %s"):format(q(key), q(key))), "munge key")
  local sock = dir .. "/munge/munge.socket"
  c.pids.munged = spawn(("exec %s -F -f --socket=%s --key-file=%s --pid-file=%s --log-file=%s --seed-file=%s"):format(
    prog("munged"), q(sock), q(key), q(dir .. "/munge/munged.pid"), q(dir .. "/munge/munged.log"), q(dir .. "/munge/seed")),
    dir .. "/log/munged.out", dir .. "/munged.mypid")
  if not await(function() return util.exists(sock) end, 20) then
    c:stop()
    error("munged did not start: " .. (read(dir .. "/log/munged.out") or ""), 0)
  end
  local ports = free_ports(3)
  local host = capture("hostname"):gsub("%s+$", "")
  local conf = dir .. "/slurm.conf"
  local f = assert(io.open(conf, "w"))
  f:write(table.concat({
    "ClusterName=lacostest",
    "SlurmctldHost=localhost(127.0.0.1)",
    "SlurmctldPort=" .. ports[1],
    "SlurmUser=root",
    "SlurmdUser=root",
    "AuthType=auth/munge",
    "CredType=cred/munge",
    "AuthInfo=socket=" .. sock,
    "ProctrackType=proctrack/linuxproc",
    "TaskPlugin=task/none",
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_Core_Memory",
    "JobCompType=jobcomp/filetxt",
    "JobCompLoc=" .. dir .. "/log/jobcomp.txt",
    "AccountingStorageType=accounting_storage/none",
    "StateSaveLocation=" .. dir .. "/state",
    "SlurmdSpoolDir=" .. dir .. "/spool%n",
    "SlurmctldPidFile=" .. dir .. "/slurmctld.pid",
    "SlurmdPidFile=" .. dir .. "/slurmd-%n.pid",
    "SlurmctldLogFile=" .. dir .. "/log/slurmctld.log",
    "SlurmdLogFile=" .. dir .. "/log/slurmd-%n.log",
    "SlurmdParameters=config_overrides",
    "ReturnToService=2",
    "MpiDefault=none",
    "KillWait=10",
    "MinJobAge=600",
    "MaxArraySize=50",   -- small, so that the test of a grid larger than the cluster allows stays small
    ("NodeName=n1 NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=2 RealMemory=4000 State=UNKNOWN"):format(host, ports[2]),
    ("NodeName=n2 NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=2 RealMemory=4000 State=UNKNOWN"):format(host, ports[3]),
    "PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP",
  }, "\n"), "\n")
  f:close()
  c.conf = conf
  c.env = "env SLURM_CONF=" .. q(conf)
  c.pids.slurmctld = spawn(("exec env SLURM_CONF=%s %s -D -f %s"):format(q(conf), prog("slurmctld"), q(conf)),
                           dir .. "/log/slurmctld.out", dir .. "/slurmctld.mypid")
  if not await(function() return sh(c.env .. " scontrol ping 2>/dev/null | grep -q UP") end, 30) then
    local why = (read(dir .. "/log/slurmctld.out") or "") .. (read(dir .. "/log/slurmctld.log") or "")
    c:stop()
    error("slurmctld did not come up: " .. why:sub(-2000), 0)
  end
  for _, n in ipairs { "n1", "n2" } do
    c.pids["slurmd-" .. n] = spawn(("exec env SLURM_CONF=%s %s -D -f %s -N %s"):format(q(conf), prog("slurmd"), q(conf), n),
                                   dir .. "/log/slurmd-" .. n .. ".out", dir .. "/slurmd-" .. n .. ".mypid")
  end
  local idle = function()
    local out = capture(c.env .. " sinfo -h -N -o '%N %t'")
    local n = 0
    for _ in out:gmatch("n%d idle") do n = n + 1 end
    return n == 2
  end
  if not await(idle, 60) then
    local why = capture(c.env .. " sinfo -N") .. (read(dir .. "/log/slurmd-n1.out") or "") .. (read(dir .. "/log/slurmctld.log") or "")
    c:stop()
    error("the two slurmd nodes did not become idle: " .. why:sub(-2000), 0)
  end
  return c
end

-- Runs a client command against this cluster; returns its output.
function Cluster:run(cmd) return capture(self.env .. " " .. cmd) end

-- Cancels every job left, waits for them to go, then stops the daemons by
-- PID (TERM, then KILL after 10 s).
function Cluster:stop()
  if self.pids.slurmctld then
    sh(self.env .. " scancel --quiet --user=$(id -un) 2>/dev/null")
    await(function() return capture(self.env .. " squeue -h 2>/dev/null"):match("%S") == nil end, 30)
  end
  for _, name in ipairs { "slurmd-n1", "slurmd-n2", "slurmctld", "munged" } do
    local pid = self.pids[name]
    if pid then
      sh(("kill -TERM %d 2>/dev/null"):format(pid))
      if not await(function() return not sh(("kill -0 %d 2>/dev/null"):format(pid)) end, 10) then
        sh(("kill -KILL %d 2>/dev/null"):format(pid))
      end
      self.pids[name] = nil
    end
  end
end

return M
