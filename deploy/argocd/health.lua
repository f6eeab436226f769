-- Argo CD health check for poolwatch.io/PoolStatisticsWatch (Lua 5.1, as Argo CD runs it).
-- Healthy: Ready is True for the current generation. Degraded: Stalled is True (a change from
-- you is needed). Suspended: spec.suspend. Progressing: anything else, e.g. before the first
-- poll, while a new generation is polled (Reconciling), or while a failure is retried.
-- A pool that ModelArts reports Abnormal or failed (PoolsHealthy False) leaves the watch Healthy,
-- with the pools named in the message: the watch works, and no change in git can fix a pool.
local hs = {}

local function condition(conditions, kind)
  for _, c in ipairs(conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator's first status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(conditions, "Ready")
local current = ready ~= nil and (ready.observedGeneration == nil or generation == nil
  or ready.observedGeneration == generation)
if current and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  local pools = condition(conditions, "PoolsHealthy")
  if pools ~= nil and pools.status == "False" then
    hs.message = hs.message .. "; PoolsHealthy is False: " .. describe(pools)
  end
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Polling is suspended (spec.suspend)"
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the first poll"
end
return hs
