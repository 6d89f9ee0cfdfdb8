-- Argo CD health check for serinus.dev/ModelDeployment (resource.customizations.health.serinus.dev_ModelDeployment).
-- Reads only the status the operator writes: observedGeneration, phase and the kstatus conditions.
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Serinus operator to pick up this ModelDeployment"
  return hs
end
local status = obj.status
if status.observedGeneration == nil or status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(obj.metadata.generation)
  return hs
end
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "SpecValid" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
  end
end
local phase = status.phase
local message = status.message or phase
if phase == "Stable" then
  hs.status = "Healthy"
elseif phase == "RolledBack" or phase == "Failed" or phase == "Degraded" then
  hs.status = "Degraded"
elseif phase == "Paused" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
